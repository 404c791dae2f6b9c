"""What a calibration run is: every setting that changes the statistics it produces.

The defaults reproduce the Astra reference code (LyoAI/Astra `dataset/loader.py` + `astra.py`; protocol §1.1-1.2).
Each field that departs from the paper's text is tied to a discrepancy in docs/astra_fidelity.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from astra_repro.errors import ConfigError

# Valid values of the enumerated fields; the error messages list them.
CHOICES: dict[str, tuple[str, ...]] = {
    "source": ("task", "wikitext2"),
    "prompt": ("reference", "training"),
    "padding": ("max_length", "none"),
    "padding_side": ("tokenizer", "left", "right"),
    "normalize": ("absmax", "none"),
    "accumulate_dtype": ("model", "float32", "float64"),
    "where": ("output", "input"),
    "seq2seq_forward": ("teacher_forced", "source_only"),
    "algorithm": ("fast", "direct"),
}

# Method option name -> spec field. A data-driven method may override these stage defaults in its own YAML.
METHOD_OVERRIDABLE = {
    "center": "center",
    "normalize": "normalize",
    "include_padding": "include_padding",
    "accumulate_dtype": "accumulate_dtype",
    "calibration_prompt": "prompt",
}


@dataclass(frozen=True)
class CalibrationSpec:
    """Settings of one calibration pass. Defaults = the released Astra code."""

    source: str = "task"  # "task": the task's training records; "wikitext2": raw WikiText-2 lines (Fig. 2d)
    n_samples: int = 256  # records (task) or lines (wikitext2) drawn; reference: 256 math/code, 64 commonsense
    seq_len: int = 512  # tokenised length before the last position is dropped (so seq_len - 1 rows per sample)
    batch_size: int = 1  # the reference used 1; larger batches give the same result here (D7 fixed)
    seed: int = 42  # random.Random(seed).sample(range(len(records)), n_samples)
    prompt: str = "reference"  # "reference": instruction + "\n### Response:" + output (D8); "training": Alpaca text
    padding: str = "max_length"  # "max_length": pad every sample to seq_len with EOS (reference); "none"
    include_padding: bool = True  # reference: pad-position activations enter the statistics (D4)
    normalize: str = "absmax"  # reference: each sample divided by abs(signed max) (D3); "none"
    center: bool = False  # reference: uncentred second moment; True = Eq. 2 (D2)
    # reference: the model's dtype (bf16 under the paper's scripts, D5); "float32"; "float64" (accumulation and eigh in
    # float64: what resolves the small end of a spectrum, D13 - Astra's `accumulate_dtype: auto` picks it there)
    accumulate_dtype: str = "model"
    where: str = "output"  # "output": Astra hooks layer outputs; "input": CorDA hooks layer inputs
    padding_side: str = "tokenizer"  # "tokenizer": whatever the tokenizer says (reference); "left" / "right"
    path: str | None = None  # wikitext2 only: a local raw text file (one HF row per line)
    # Encoder-decoder models only (T5 on GLUE). OUR assumption - the authors never say how Astra calibrates T5:
    # "teacher_forced": x -> encoder, the gold target y teacher-forced into the decoder (decoder input = shift_right(y)),
    # so every decoder layer sees real activations; "source_only": x -> encoder, the decoder gets only its start token
    # (the step GLUE scoring reads; no gold label enters the statistics). Ignored for causal LMs.
    seq2seq_forward: str = "teacher_forced"
    # How the statistics are computed, not what they are: "fast" (input-side statistics where a layer has more
    # outputs than inputs, batched GEMMs, shared Gram matrices, the forward cut after the last target layer) or
    # "direct" (sample by sample, as the reference). Equal to fp32 rounding; bf16 accumulation always runs "direct".
    algorithm: str = "fast"

    def __post_init__(self) -> None:
        for name, valid in CHOICES.items():
            value = getattr(self, name)
            if value not in valid:
                raise ConfigError(f"calibration {name} '{value}' is not valid; valid: {', '.join(valid)}")
        for name in ("n_samples", "seq_len", "batch_size", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(
                    f"calibration.{name} must be an int, got {value!r}; set calibration.{name}=<integer>"
                )
        if self.n_samples < 1 or self.batch_size < 1:
            raise ConfigError("calibration.n_samples and calibration.batch_size must be >= 1")
        if self.seq_len < 2:
            raise ConfigError(f"calibration.seq_len must be >= 2 (the last position is dropped), got {self.seq_len}")
        for name in ("include_padding", "center"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"calibration {name} must be true or false, got {getattr(self, name)!r}")

    @property
    def rows_per_sample(self) -> int:
        return self.seq_len - 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_config(
        cls,
        calibration_cfg: DictConfig | Mapping | None,
        method_options: DictConfig | Mapping | None = None,
        **overrides: Any,
    ) -> "CalibrationSpec":
        """Stage settings (cfg.calibration, with n_samples and seq_len resolved to ints), then the method's
        overrides of center / normalize / include_padding / accumulate_dtype / calibration_prompt (keys may be
        missing or null = keep the stage value), then explicit keyword overrides (e.g. where="output")."""
        if calibration_cfg is None:
            raise ConfigError("this method needs calibration settings; add calibration=task (or wikitext2) to the config")
        stage = _plain(calibration_cfg)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in stage.items() if k in known}
        options = _plain(method_options) if method_options is not None else {}
        for option_name, field_name in METHOD_OVERRIDABLE.items():
            if options.get(option_name) is not None:
                values[field_name] = options[option_name]
        values.update(overrides)
        for name in ("n_samples", "seq_len"):
            if isinstance(values.get(name), Mapping):
                raise ConfigError(f"calibration.{name}={values[name]} is a mapping; set calibration.{name}=<integer>")
        if values.get("padding") is False:  # YAML `none` without quotes is fine; `false` is a common slip
            values["padding"] = "none"
        return cls(**values)


def _plain(cfg: DictConfig | Mapping) -> dict:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)
