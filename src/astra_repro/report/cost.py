"""What the runs cost, one table per sweep (the record's `sweep`, set by `astra_repro.sweep --local` and the SLURM
array script; runs started by hand are grouped as "no sweep"): tokens trained on, wall time per stage, device type
and count, device-hours, peak memory, init and calibration time, and the sweep's total."""

from __future__ import annotations

import pandas as pd

from astra_repro.report.display import MISSING, DisplayTable

STAGES = ("init_s", "train_s", "export_s", "eval_s", "wall_s")
NO_SWEEP = "no sweep"


def _seconds(value) -> str:
    if value is None or pd.isna(value):
        return MISSING
    value = float(value)
    return f"{value / 3600:.2f} h" if value >= 3600 else f"{value / 60:.1f} min" if value >= 60 else f"{value:.1f} s"


def _tokens(value) -> str:
    if value is None or pd.isna(value):
        return MISSING
    value = float(value)
    return f"{value / 1e9:.2f}B" if value >= 1e9 else f"{value / 1e6:.2f}M" if value >= 1e6 else f"{int(value):,}"


def cost_rows(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        cost, timings = r.get("cost") or {}, r.get("timings") or {}
        wall = timings.get("wall_s")
        n_devices = cost.get("n_devices", 1)
        rows.append({
            "sweep": r.get("sweep") or NO_SWEEP, "model": r.get("model"),
            "task": r.get("task", "?") + (f"/{r['task_variant']}" if r.get("task_variant") else ""),
            "method": r.get("method_label", r.get("method")), "rank": r.get("rank"), "seed": r.get("seed"),
            "tokens_trained": cost.get("tokens_trained"),
            "calibration_s": cost.get("calibration_s", (r.get("init") or {}).get("calibration", {}).get("calibration_s")),
            "init_compute_s": cost.get("init_s", (r.get("init") or {}).get("init_seconds")),
            **{stage: timings.get(stage) for stage in STAGES},
            "device": cost.get("device", MISSING), "n_devices": n_devices,
            "device_hours": cost.get("device_hours", wall * n_devices / 3600 if wall is not None else None),
            "peak_memory_gb": cost.get("peak_memory_gb"), "resumed": cost.get("resumed"),
        })
    return pd.DataFrame(rows)


def cost_tables(records: list[dict]) -> list[DisplayTable]:
    if not records:
        return []
    frame = cost_rows(records)
    tables = []
    for sweep, group in frame.groupby("sweep", sort=True):
        group = group.sort_values(["task", "model", "method", "rank", "seed"], key=lambda s: s.astype(str))
        header = ["task", "model", "method", "rank", "seed", "tokens", "calibration", "init", "train", "export", "eval",
                  "wall", "device", "devices", "device-h", "peak GB"]
        shown = []
        for _, row in group.iterrows():
            shown.append([
                str(row["task"]), str(row["model"]), str(row["method"]), str(row["rank"] or "full"), str(row["seed"]),
                _tokens(row["tokens_trained"]), _seconds(row["calibration_s"]), _seconds(row["init_s"]),
                _seconds(row["train_s"]), _seconds(row["export_s"]), _seconds(row["eval_s"]), _seconds(row["wall_s"]),
                str(row["device"]), str(row["n_devices"]),
                MISSING if pd.isna(row["device_hours"]) else f"{row['device_hours']:.3f}",
                MISSING if pd.isna(row["peak_memory_gb"]) else f"{row['peak_memory_gb']:.1f}",
            ])
        total_hours = group["device_hours"].sum(min_count=1)
        shown.append(["total", "", f"{len(group)} runs", "", "", _tokens(group["tokens_trained"].sum(min_count=1)),
                      "", "", "", "", "", _seconds(group["wall_s"].sum(min_count=1)), "", "",
                      MISSING if pd.isna(total_hours) else f"{total_hours:.3f}",
                      MISSING if group["peak_memory_gb"].isna().all() else f"{group['peak_memory_gb'].max():.1f}"])
        notes = ["init: the whole calibrate + init stage (loading a saved init on resume is fast); calibration: the "
                 "activation pass alone. Times are those of the attempt that finished the run: a resumed run's "
                 f"earlier attempts are not counted ({int(group['resumed'].fillna(False).sum())} resumed here). "
                 "Peak memory: the GPU allocator's peak, or the process's peak resident set on a CPU."]
        slug = str(sweep).replace(" ", "_")
        tables.append(DisplayTable(f"cost_{slug}", f"Cost — sweep {sweep}", header, shown, group.reset_index(drop=True), notes))
    return tables
