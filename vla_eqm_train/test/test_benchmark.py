"""MT50 scoring as the published table does it, and the README table generated from results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from vla_eqm_sim.suites import suite_tasks
from vla_eqm_train.evaluation.benchmark import markdown_table, suite_metrics

ROOT = Path(__file__).resolve().parents[2]


def _records(rates: dict[str, float], n: int = 10, steps: int = 80) -> list[dict]:
    return [{"task": t, "success": i < round(r * n), "steps": steps if i < round(r * n) else 500}
            for t, r in rates.items() for i in range(n)]


def test_the_headline_is_the_mean_of_the_group_means_not_of_the_episodes():
    easy, very_hard = suite_tasks("easy"), suite_tasks("very_hard")
    rates = {**{t: 1.0 for t in suite_tasks("mt50")}, **{t: 0.0 for t in very_hard}}
    m = suite_metrics(_records(rates), suite_tasks("mt50"))
    assert m["group_success"] == {"easy": 1.0, "medium": 1.0, "hard": 1.0, "very_hard": 0.0}
    assert m["group_mean"] == pytest.approx(0.75) and m["groups_complete"]
    assert m["episode_mean"] == pytest.approx(45 / 50)  # 5 of 50 tasks fail: the weights differ
    assert m["per_task"][easy[0]] == 1.0 and m["per_task"][very_hard[0]] == 0.0


def test_a_success_after_the_shorter_limit_does_not_count_within_it():
    tasks = suite_tasks("hard")[:2]
    records = _records({tasks[0]: 1.0}, steps=80) + _records({tasks[1]: 1.0}, steps=150)
    assert suite_metrics(records, tasks)["group_mean"] == 1.0
    short = suite_metrics(records, tasks, within_steps=100)
    assert short["per_task"] == {tasks[0]: 1.0, tasks[1]: 0.0}
    assert set(short["group_success"]) == {"hard"} and not short["groups_complete"]


def test_the_markdown_puts_our_rows_beside_the_published_ones_with_their_source():
    text = markdown_table([{"policy": "ours", "group_success": {"easy": 0.5, "hard": 0.25},
                            "group_mean": 0.375, "episode_mean": 0.4, "source": "x episodes"}])
    assert "| SmolVLA | 87.1 | 51.8 | 70.0 | 64.0 | 68.2 | – | published |" in text
    assert "| ours | 50.0 | – | 25.0 | – | **37.5** | 40.0 | x episodes |" in text
    assert "pi-rl.txt Table 4" in text


def test_bench_mt50_rewrites_only_the_readme_block_between_its_markers(tmp_path):
    bench = _load_bench("mt50")
    row = {"checkpoint": "/x/mt50_eqm", "group_success": {"easy": 0.9}, "group_mean": 0.9,
           "episode_mean": 0.9, "episodes_run": 280, "step_limit": 500, "variation_seed": 1000}
    results = {"date": "2026-12-02", "command": "python bench/mt50.py", "decoders": {"eqm": row}}
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bench.BEGIN}\nold table\n{bench.END}\noutro\n")
    bench.write_readme(results, readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old table" not in text
    assert "**ours: EQM** (`mt50_eqm`)" in text and "**90.0**" in text
    (tmp_path / "r.json").write_text(json.dumps(results))
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        bench.write_readme(results, readme)


def _load_bench(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_bench", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_study_run_is_the_base_recipe_plus_its_lever_and_the_baseline_gets_no_eqm_lever(
        tmp_path):
    import yaml

    study = _load_bench("recipe_study")
    spec = yaml.safe_load(study.SPEC.read_text())
    base = yaml.safe_load((ROOT / spec["base_config"]).read_text())
    h50 = study.run_config(spec, "h50", "fm", tmp_path / "cache", tmp_path)
    assert h50["model"] == {**base["model"], "horizon": 50} and h50["decoder"] == "fm"
    assert h50["steps"] == spec["train"]["steps"] and h50["threads"] == 1
    assert h50["policy"]["solver"] == base["policy"]["solver"]  # merged, not replaced
    energy = study.run_config(spec, "energy_dot", "eqm", tmp_path / "cache", tmp_path)
    assert energy["policy"]["eqm"] == {"energy": "dot"}
    assert energy["out"] == str(tmp_path / "runs" / "energy_dot_eqm" / "ckpt")
    for name, entry in spec["runs"].items():  # every lever names only decoders it can change
        assert set(entry["decoders"]) <= {"eqm", "fm"}, name
        if "eqm" in entry.get("policy", {}):
            assert entry["decoders"] == ["eqm"], name


def test_group_mean_intervals_are_paired_over_the_same_start_states():
    from vla_eqm_sim.suites import suite_tasks
    from vla_eqm_train.evaluation.benchmark import group_mean_intervals, suite_metrics

    tasks = suite_tasks("mt50")
    a = [{"task": t, "variation": v, "seed": 1000, "success": v < 5, "steps": 10}
         for t in tasks for v in range(10)]
    # b succeeds exactly where a does, plus variation 5: always 0.1 ahead, on every draw
    b = [{**r, "success": r["variation"] < 6} for r in a]
    out = group_mean_intervals({"a": a, "b": b}, tasks, resamples=200)
    assert out["tasks"] == 50 and out["episodes_per_run"] == 500
    lo, hi = out["group_mean_ci95"]["a"]
    assert lo < suite_metrics(a, tasks)["group_mean"] < hi
    lo, hi = out["paired_difference_ci95"]["b-a"]
    assert 0.0 < lo <= 0.1 <= hi < 0.2  # paired: far narrower than the two intervals' spread
