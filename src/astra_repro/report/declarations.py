"""What each evaluator declared about its results (evaluators/base.py `Declaration`: label, item id field and
metrics with their per-item fields, directions and labels), read from the run record: every evaluator writes it
into its result (`eval_data.<evaluator>.declaration`). A record written before declarations existed has none; for
it, the evaluator class of that name declares it, through the evaluators' own registry. report/ keeps no list of
evaluators, metrics or labels of its own: an evaluator it has never heard of is reported from its record alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from astra_repro.evaluators.base import Declaration


def declaration(record: dict, evaluator: str) -> Declaration | None:
    """The evaluator's declaration for this record; None for an evaluator neither the record nor the registry knows."""
    # imported here: the evaluators package imports every evaluator (torch, ...), which most reports never need
    from astra_repro.evaluators import EVALUATORS
    from astra_repro.evaluators.base import DECLARATION_KEY, Declaration

    written = (((record.get("eval_data") or {}).get(evaluator) or {})).get(DECLARATION_KEY)
    if written:
        return Declaration.from_dict(written)
    return EVALUATORS.get(evaluator).declaration() if evaluator in EVALUATORS else None


def declared(records: Iterable[dict], evaluator: str) -> Declaration | None:
    """The first declaration of `evaluator` among `records` (the registry's when none holds one)."""
    for record in records:
        if (record.get("eval_data") or {}).get(evaluator) is not None or evaluator in (record.get("metrics") or {}):
            found = declaration(record, evaluator)
            if found is not None:
                return found
    return declaration({}, evaluator)


def primary_metric(record: dict, evaluator: str, default: str = "accuracy") -> str:
    found = declaration(record, evaluator)
    if found is not None:
        return found.primary_metric
    return ((record.get("eval_data") or {}).get(evaluator) or {}).get("primary_metric") or default


def evaluator_label(records: Iterable[dict], evaluator: str) -> str:
    found = declared(records, evaluator)
    return found.label if found is not None else evaluator


def metric_label(records: Iterable[dict], evaluator: str, metric: str) -> str:
    found = declared(records, evaluator)
    spec = found.metric(metric) if found is not None else None
    return spec.label if spec is not None else f"{evaluator} {metric}"
