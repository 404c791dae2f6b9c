"""Training-curve figures from run records (the paper's Figures 1, 4, 7 and 8): loss and gradient norm per
step, one line per method, for each (task, model). Reads `train_log.jsonl` files only."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def read_train_log(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "train_log.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if "loss" in r and "train_loss" not in r]


def training_curves(records: list[dict], out_path: Path, title: str) -> Path | None:
    """One PNG with loss (left) and grad norm (right) against the optimiser step. The first seed of each
    (method, rank) is drawn, so curves compare inits rather than seeds. None when no run has a log."""
    curves = {}
    for record in sorted(records, key=lambda r: (str(r.get("method_label", r["method"])), r.get("rank", 0), r["seed"])):
        label = f"{record.get('method_label', record['method'])} r={record.get('rank') or 'full'}"
        if label in curves:
            continue
        log = read_train_log(Path(record["run_dir"]))
        if log:
            curves[label] = log
    if not curves:
        return None
    fig, (ax_loss, ax_grad) = plt.subplots(1, 2, figsize=(11, 4))
    for label, log in curves.items():
        steps = [r["step"] for r in log]
        ax_loss.plot(steps, [r["loss"] for r in log], label=label)
        if all("grad_norm" in r for r in log):
            ax_grad.plot(steps, [r["grad_norm"] for r in log], label=label)
    ax_loss.set(xlabel="step", ylabel="training loss", title=f"{title}: loss")
    ax_grad.set(xlabel="step", ylabel="gradient norm (before clipping)", title=f"{title}: grad norm", yscale="log")
    ax_loss.legend(fontsize=8)
    fig.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return out_path
