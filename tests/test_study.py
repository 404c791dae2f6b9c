"""Studies (study.py, report/study.py, sweep.py): the grid a study file expands to, choosing each method's rate on one half of
the items and reporting on the other, stage 2's lines, re-running a finished study starts nothing, and the tables
and figure built from records."""

from __future__ import annotations

import json
import random
import shlex
import statistics
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from astra_repro import runs, sweep
from astra_repro.errors import ConfigError
from astra_repro.paths import CONFIG_DIR
from astra_repro import study as study_mod
from astra_repro.report import study as study_report
from astra_repro.report.hierarchical import compare_runs
from astra_repro.spec import plan_run

N_ITEMS = 40


# -------------------------------------------------------------------------------------------- the real study file
@pytest.mark.parametrize("name, glue_task", [("study_sst2_smollm2", "sst2"), ("study_mrpc_smollm2", "mrpc")])
def test_each_real_study_expands_to_every_method_at_every_rate_with_the_papers_rate_among_them(name, glue_task):
    definition = sweep.load_sweep(name)
    study = study_mod.Study.from_sweep(name, definition)
    lines = sweep.expand(definition)
    assert len(study.rates) >= 4 and study.paper_lr in study.rates
    assert len(lines) == len(study.rates) * len(study.variants) * len(study.grid_seeds)
    keys = {v.key for v in study.variants}
    assert {"lora", "pissa", "milora", "loraga", "corda", "astra subspace=largest", "astra subspace=smallest"} <= keys
    seen = set()
    for line in lines:
        assert "keep_weights=false" in line and f"task.glue_task={glue_task}" in line
        lr = float(next(o for o in line if o.startswith("lr=")).split("=")[1])
        variant = [v for v in study.variants if all(o in line for o in v.overrides)]
        assert len(variant) == 1 or {v.key for v in variant} == {"astra"}  # groups are applied together
        seen.add((variant[-1].key, lr))
        # stage 2 writes a line the same way the grid does: same overrides, same order
        seed = int(next(o for o in line if o.startswith("seed=")).split("=")[1])
        assert study.line(variant[-1], lr, seed) == line
    assert seen == {(v.key, lr) for v in study.variants for lr in study.rates}


def test_the_mrpc_study_is_the_sst2_studys_protocol_on_another_task():
    """Same grid, seeds, sizes, selection half and contrasts; only the task and the output folder differ."""
    sst2, mrpc = sweep.load_sweep("study_sst2_smollm2"), sweep.load_sweep("study_mrpc_smollm2")
    differs = {"task.glue_task=sst2": "task.glue_task=mrpc",
               "output_root=results/studies/study_sst2_smollm2": "output_root=results/studies/study_mrpc_smollm2"}
    assert [differs.get(o, o) for o in sst2["fixed"]] == mrpc["fixed"]
    assert sst2["axes"] == mrpc["axes"] and sst2["study"] == mrpc["study"]


def test_every_line_of_the_sst2_study_plans_on_the_real_config_with_forgetting_on_the_untouched_base():
    definition = sweep.load_sweep("study_sst2_smollm2")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        plans = [plan_run(compose("config", overrides=line)) for line in sweep.expand(definition)]
    assert len({p["run_name"] if "run_name" in p else runs.run_name(p) for p in plans}) == len(plans)
    for plan in plans:
        assert plan["hp"]["rank"] == 8 and plan["hp"]["alpha"] == 16
        forgetting = plan["task"]["evaluators"]["forgetting"]
        assert forgetting["base_model"]["name"] == plan["model"]["name"] == "smollm2_135m"
        assert plan["task"]["evaluators"]["glue_dev"]["n"] is None  # the whole dev set: both halves


# ----------------------------------------------------------------------------------------------- a small study
def write_study_file(folder, root, rates=(1e-4, 1e-3), grid_seeds=(1,), seeds=(1, 2)):
    definition = {
        "fixed": ["model=tiny_llama", "task=glue", "task.evaluators.glue_dev.n=4", f"output_root={root}"],
        "axes": {"lr": list(rates), "method": ["lora", "pissa", ["method=astra", "method.subspace=smallest"]],
                 "seed": list(grid_seeds)},
        "study": {"metric": "glue_dev/accuracy", "select_on": "even", "paper_lr": rates[0], "seeds": list(seeds),
                  "contrasts": [["astra subspace=smallest", "pissa"]], "labels": {"lora": "LoRA"}, "baseline": "base"},
    }
    (folder / "tinystudy.yaml").write_text(yaml.safe_dump(definition))
    return definition


@pytest.fixture
def tiny_study(tmp_path, monkeypatch):
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    monkeypatch.setattr(sweep, "SWEEP_DIR", sweeps)
    monkeypatch.setattr(sweep, "PROJECT_ROOT", tmp_path)  # manifests go to tmp_path/sweeps/<name>/
    root = tmp_path / "studies" / "tinystudy"
    definition = write_study_file(sweeps, root)
    return study_mod.Study.from_sweep("tinystudy", definition), root


def outcomes_for(even_score: float, odd_score: float, seed: int) -> list[bool]:
    """N_ITEMS outcomes whose even positions are `even_score` % correct and odd ones `odd_score` %."""
    half = N_ITEMS // 2
    rng = random.Random(seed)
    even = [i < round(even_score / 100 * half) for i in range(half)]
    odd = [i < round(odd_score / 100 * half) for i in range(half)]
    rng.shuffle(even)
    rng.shuffle(odd)
    return [x for pair in zip(even, odd) for x in pair]


def write_planned_record(line: list[str], outcomes: list[bool], forgetting: float) -> str:
    """A finished run folder exactly where the entry point would put this line's run, as the runner writes it."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=line)
    plan = plan_run(cfg)
    run_dir = runs.run_dir(plan, cfg.output_root)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(plan))
    (run_dir / runs.PREDICTIONS_FILE).write_text("".join(
        json.dumps({"evaluator": "glue_dev", "prompt": f"item {i}", "correct": ok}) + "\n" for i, ok in enumerate(outcomes)))
    record = {"run_name": run_dir.name, "task": "glue", "model": "tiny_llama", "method": plan["method"]["name"],
              "learning_rate": plan["hp"]["learning_rate"], "seed": plan["seed"],
              "metrics": {"glue_dev": {"accuracy": 100 * sum(outcomes) / len(outcomes)},
                          "forgetting": {"forgetting": forgetting}}}
    (run_dir / runs.METRICS_FILE).write_text(json.dumps(record))
    return str(run_dir)


# Selection-half / report-half scores per (variant, lr) at the grid seed: the selection half prefers 1e-3 for lora
# and 1e-4 for pissa and astra, while the report half would have chosen otherwise (a choice made on the reported
# items would differ).
GRID = {("lora", 1e-4): (50, 90), ("lora", 1e-3): (80, 60), ("pissa", 1e-4): (85, 50), ("pissa", 1e-3): (70, 95),
        ("astra subspace=smallest", 1e-4): (75, 75), ("astra subspace=smallest", 1e-3): (75, 80)}
SEED2 = {"lora": (70, 65), "pissa": (90, 40), "astra subspace=smallest": (70, 85)}


def write_grid(study, keys=None):
    for (key, lr), (even, odd) in GRID.items():
        if keys is None or (key, lr) in keys:
            write_planned_record(study.line(study.variant(key), lr, 1), outcomes_for(even, odd, 7), 0.01 * lr * 1e3)


def test_the_rate_is_chosen_on_the_selection_half_and_a_tie_goes_to_the_smaller_rate(tiny_study):
    study, root = tiny_study
    write_grid(study)
    best = study_mod.best_rates(study, study_mod.load_runs(study))
    assert best["lora"].lr == 1e-3 and best["lora"].selection_score == 80
    assert best["pissa"].lr == 1e-4  # the report half (95 at 1e-3) did not choose
    assert best["astra subspace=smallest"].lr == 1e-4  # 75 = 75: the smaller rate


def test_stage2_waits_for_an_incomplete_grid_then_plans_each_best_rate_with_every_seed(tiny_study):
    study, _ = tiny_study
    write_grid(study, keys=[k for k in GRID if k != ("pissa", 1e-3)])
    lines, waiting = study_mod.stage2_lines(study, study_mod.load_runs(study))
    assert waiting == ["pissa (grid rates missing: 0.001)"]
    assert len(lines) == 2 * len(study.seeds)
    write_grid(study, keys=[("pissa", 1e-3)])
    lines, waiting = study_mod.stage2_lines(study, study_mod.load_runs(study))
    assert waiting == []
    assert lines == [study.line(study.variant(key), lr, seed) for key, lr in
                     [("lora", 1e-3), ("pissa", 1e-4), ("astra subspace=smallest", 1e-4)] for seed in (1, 2)]


def test_a_finished_study_is_replanned_without_starting_any_run(tiny_study, monkeypatch, capsys):
    study, _ = tiny_study
    started = []
    monkeypatch.setattr(sweep.subprocess, "run", lambda cmd, **kw: started.append(cmd))
    sweep.main(["tinystudy", "--local"])  # nothing finished: every grid line and the baseline start, stage 2 waits
    assert len(started) == len(GRID) + 1
    assert any("method=base" in cmd for cmd in started)
    assert "stage 2 (best rate x seeds) waits" in capsys.readouterr().out
    started.clear()
    write_grid(study)
    write_planned_record(study.baseline_lines()[0], outcomes_for(50, 50, 3), 0.0)
    best = {"lora": 1e-3, "pissa": 1e-4, "astra subspace=smallest": 1e-4}
    for key, (even, odd) in SEED2.items():
        write_planned_record(study.line(study.variant(key), best[key], 2), outcomes_for(even, odd, 9), 0.02)
    sweep.main(["tinystudy", "--local"])
    out = capsys.readouterr().out
    assert started == []
    assert f"{len(GRID) + 1} of {len(GRID) + 1} runs already finished; 0 to run" in out
    assert "6 of 6 runs already finished; 0 to run" in out and "is complete" in out


def test_study_tables_report_the_other_half_with_seeds_resampled_at_the_best_rate(tiny_study, tmp_path):
    study, root = tiny_study
    write_grid(study)
    best = {"lora": 1e-3, "pissa": 1e-4, "astra subspace=smallest": 1e-4}
    for key, (even, odd) in SEED2.items():
        write_planned_record(study.line(study.variant(key), best[key], 2), outcomes_for(even, odd, 9), 0.02)
    write_planned_record(study.baseline_lines()[0], outcomes_for(30, 40, 3), 0.0)
    study_runs = study_mod.load_runs(study)
    tables = {t.name.split("_", 1)[1]: t for t in study_report.study_tables(study, study_runs)}
    assert set(tables) == {"best_rate", "paper_rate", "contrasts", "grid"}

    best_rate = tables["best_rate"].data.set_index("method")
    # pissa at 1e-4: odd halves 50 (seed 1) and 40 (seed 2)
    assert best_rate.loc["pissa", "score_mean"] == pytest.approx(45.0)
    assert best_rate.loc["pissa", "score_std"] == pytest.approx(statistics.stdev([50, 40]))
    assert best_rate.loc["pissa", "bootstrap"] == "hierarchical"
    pissa_runs = [r for r in study_runs if r.variant.key == "pissa" and r.lr == 1e-4]
    lora_runs = [r for r in study_runs if r.variant.key == "lora" and r.lr == 1e-3]
    expected = compare_runs([r.half("odd") for r in pissa_runs], [r.half("odd") for r in lora_runs])
    assert best_rate.loc["pissa", "diff"] == pytest.approx(expected.difference)
    assert best_rate.loc["pissa", "diff"] == pytest.approx(45.0 - statistics.fmean([60, 65]))
    assert tables["best_rate"].rows[0][:3] == ["base (untrained)", "", "40.00 (1)"]  # context, no rate, no Δ
    assert tables["best_rate"].rows[1][0] == "LoRA"  # the study's display label
    assert study_mod.best_rates(study, study_runs).keys() == {v.key for v in study.variants}  # base has no rate

    paper = tables["paper_rate"].data.set_index("method")  # one seed at the paper's rate: items only
    assert paper.loc["lora", "score_mean"] == pytest.approx(90.0)
    assert paper.loc["pissa", "bootstrap"] == "items"
    assert paper.loc["pissa", "diff"] == pytest.approx(50.0 - 90.0)

    grid = tables["grid"].data
    chosen = grid[grid["chosen"]].set_index("method")["lr"].to_dict()
    assert chosen == best
    assert grid.set_index(["method", "lr"]).loc[("pissa", 1e-3), "score_report_half"] == pytest.approx(95.0)

    paths = study_report.study_figure(study, study_runs, tmp_path / "figures")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)
    assert study_mod.progress(study, study_runs) is None  # complete: no "in progress" note
    assert not any(note.startswith("In progress") for t in tables.values() for note in t.notes)


def test_tables_of_an_unfinished_study_say_first_what_is_missing(tiny_study):
    study, _ = tiny_study
    write_grid(study, keys=[k for k in GRID if k != ("pissa", 1e-3)])  # 5 of 6 grid runs, no seed 2, no baseline
    study_runs = study_mod.load_runs(study)
    note = study_mod.progress(study, study_runs)
    # lora and astra have their grids, hence best rates, with seed 1 done of seeds (1, 2); pissa has none
    assert note.startswith("In progress: 5 of 6 grid runs and 2 of 6 best-rate runs have records; the untrained "
                           "baseline has none.") and "python -m astra_repro.sweep tinystudy --local" in note
    assert all(t.notes[0] == note for t in study_report.study_tables(study, study_runs))


def test_two_records_of_one_grid_point_are_an_error_naming_both(tiny_study, tmp_path):
    study, root = tiny_study
    first = write_planned_record(study.line(study.variant("lora"), 1e-4, 1), outcomes_for(50, 50, 1), 0.0)
    copy = root / "glue" / "stale_copy"
    copy.mkdir(parents=True)
    for name in ("config.yaml", "metrics.json", "predictions.jsonl"):
        (copy / name).write_text((Path(first) / name).read_text())
    with pytest.raises(ConfigError, match="two records of lora lr=0.0001 seed=1"):
        study_mod.load_runs(study)


def test_a_variant_with_options_takes_its_runs_from_the_plain_method():
    plain, smallest = study_mod.Variant(("method=astra",)), study_mod.Variant(("method=astra", "method.subspace=smallest"))
    plan = {"method": {"name": "astra", "subspace": "smallest"}}
    assert plain.matches(plan) and smallest.matches(plan)
    assert not smallest.matches({"method": {"name": "astra", "subspace": "largest"}})
    assert smallest.key == "astra subspace=smallest"


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("study"), "has no `study:` block"),
    (lambda d: d["axes"].pop("seed"), "axes must be exactly lr, method and seed"),
    (lambda d: d["study"].update(metric="accuracy"), "must be <evaluator>/<metric>"),
    (lambda d: d["study"].update(select_on="first"), "select_on='first'"),
    (lambda d: d["study"].update(reference="dora"), "'dora' is not a variant"),
    (lambda d: d["fixed"].pop(), "set output_root="),
])
def test_a_malformed_study_is_one_line_naming_the_fix(tmp_path, change, message):
    definition = write_study_file(tmp_path, tmp_path / "out")
    change(definition)
    with pytest.raises(ConfigError, match=message):
        study_mod.Study.from_sweep("tinystudy", definition)


def test_a_stage2_line_is_a_manifest_line(tiny_study):
    study, _ = tiny_study
    line = study.line(study.variant("astra subspace=smallest"), 1e-3, 2)
    assert shlex.split(" ".join(shlex.quote(o) for o in line)) == line
    assert line[-3:] == ["method=astra", "method.subspace=smallest", "seed=2"]
