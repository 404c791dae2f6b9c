"""Wall time and peak memory of a stage, for run records and benchmarks.

CPU: peak resident memory above the level at entry, sampled by a background thread (every 5 ms; a spike shorter
than that can be missed). CUDA: the caching allocator's peak above the allocation at entry (exact).
"""

from __future__ import annotations

import gc
import os
import threading
import time

import torch


def resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the process's lifetime peak is the best there is
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class StageMeter:
    """with StageMeter(device) as meter: ...  ->  meter.seconds, meter.extra_peak_gb"""

    def __init__(self, device: torch.device | str = "cpu", interval_s: float = 0.005):
        self.device = torch.device(device)
        self.interval_s = interval_s
        self.seconds = 0.0
        self.extra_peak_gb = 0.0

    def __enter__(self) -> "StageMeter":
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start_bytes = torch.cuda.memory_allocated(self.device)
        else:
            self._start_bytes = resident_bytes()
            self._peak = self._start_bytes
            self._running = True
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self._t0 = time.perf_counter()
        return self

    def _sample(self) -> None:
        while self._running:
            self._peak = max(self._peak, resident_bytes())
            time.sleep(self.interval_s)

    def __exit__(self, *exc) -> bool:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._running = False
            self._thread.join()
            peak = max(self._peak, resident_bytes())
        self.seconds = time.perf_counter() - self._t0
        self.extra_peak_gb = max(0, peak - self._start_bytes) / 2**30
        return False

    def as_record(self, prefix: str) -> dict:
        return {f"{prefix}_s": round(self.seconds, 3), f"{prefix}_peak_gb": round(self.extra_peak_gb, 3)}


class Stopwatch:
    """Accumulated wall time of the blocks run under `with stopwatch:` (CUDA synchronised at both ends)."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.seconds = 0.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __enter__(self) -> "Stopwatch":
        self._sync()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> bool:
        self._sync()
        self.seconds += time.perf_counter() - self._t0
        return False


def run_cost(timings: dict, init_report: dict, train_stats: dict) -> dict:
    """What a run cost, for the cost tables: device type and count, device-hours, this process's peak memory (the
    CUDA allocator's peak on a GPU, the peak resident set on a CPU), tokens trained on (non-padding, counted by
    the Trainer and kept across resumes) and the init's own time. Times are those of the attempt that finished
    the run: a resumed run's earlier attempts are not included (`resumed` says so)."""
    import resource

    n_devices = int(os.environ.get("WORLD_SIZE", "1"))
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
        peak_gb = torch.cuda.max_memory_allocated() / 2**30
    else:
        device = f"cpu ({os.cpu_count()} cores)"
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30  # Linux reports KiB
    return {
        "device": device,
        "n_devices": n_devices,
        "device_hours": round(timings.get("wall_s", 0.0) * n_devices / 3600, 4),
        "peak_memory_gb": round(peak_gb, 3),
        "tokens_trained": train_stats.get("tokens_trained"),
        "init_s": init_report.get("init_seconds"),
        "calibration_s": calibration_seconds(init_report),
        "resumed": bool(train_stats.get("resumed_from")),
    }


def calibration_seconds(init_report: dict) -> float | None:
    """Calibration time of an init: its pass, plus the released-arithmetic pass Astra runs over layers whose
    selection's eigen-gap is within rounding (docs/astra_fidelity.md D13)."""
    parts = [(init_report.get(key) or {}).get("calibration_s")
             for key in ("calibration", "calibration_released_arithmetic")]
    parts = [p for p in parts if p is not None]
    return round(sum(parts), 3) if parts else None
