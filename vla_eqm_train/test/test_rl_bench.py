"""bench/rl.py's bookkeeping (no sims): which cached evaluation it may reuse, and where a parent's
results go. A stale or foreign evaluation reused as "before" or "after" would be a wrong number in
rl.json with nothing to show for it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_run_all_report import _load

from vla_eqm_train.evaluation.paired import paired_success

rl = _load("rl")


def _report(checkpoint: Path, episodes: int = 4, tasks: tuple[str, ...] = ("pick-place-v3",),
            run: int | None = None, step_limit: int = 200) -> dict:
    planned = episodes * len(tasks)
    return {"checkpoint": str(checkpoint), "episodes_per_task": episodes, "tasks": list(tasks),
            "episodes_run": planned if run is None else run, "episodes_planned": planned,
            "step_limit": step_limit}


@pytest.fixture
def cli_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """A recorder stands in for eval-sim: these tests are about when it must run, not what it
    does."""
    calls: list[tuple[str, ...]] = []

    def fake_cli(*args: str) -> None:
        calls.append(args)
        raw = Path(args[args.index("--json") + 1])
        ck = Path(args[args.index("--checkpoint") + 1])
        raw.write_text(json.dumps(_report(ck, int(args[args.index("--episodes") + 1]),
                                          step_limit=int(args[args.index("--max-steps") + 1]))))

    monkeypatch.setattr(rl, "_cli", fake_cli)
    return calls


def _checkpoint(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    return path


def test_a_matching_fresh_report_is_reused(tmp_path: Path, cli_calls: list) -> None:
    ck = _checkpoint(tmp_path / "ck")
    raw = tmp_path / "eval.json"
    raw.write_text(json.dumps(_report(ck)))
    assert rl.eval_sim(ck, ["pick-place-v3"], 4, raw, 2)["checkpoint"] == str(ck)
    assert cli_calls == []


@pytest.mark.parametrize("why", ["other checkpoint", "other episodes", "unfinished", "stale",
                                 "other step limit"])
def test_a_report_that_did_not_score_this_checkpoint_as_it_is_now_is_rerun(
        tmp_path: Path, cli_calls: list, why: str) -> None:
    ck = _checkpoint(tmp_path / "ck")
    raw = tmp_path / "eval.json"
    report = {"other checkpoint": _report(tmp_path / "another_parent"),
              "other episodes": _report(ck, episodes=10),
              "unfinished": _report(ck, run=3),
              "other step limit": _report(ck, step_limit=500)}.get(why, _report(ck))
    raw.write_text(json.dumps(report))
    if why == "stale":  # a resumed run rewrote the checkpoint after it was scored
        old = raw.stat().st_mtime - 60
        os.utime(raw, (old, old))
    rl.eval_sim(ck, ["pick-place-v3"], 4, raw, 2)
    assert len(cli_calls) == 1, why
    assert json.loads(raw.read_text())["checkpoint"] == str(ck)
    assert cli_calls[0][cli_calls[0].index("--max-steps") + 1] == "200"


def test_each_parent_gets_its_own_results_work_tree_and_curves(tmp_path: Path) -> None:
    work, out, suffix = rl.parent_paths(rl.DEFAULT, None, None)
    assert (out, suffix) == (rl.RESULTS, "") and work.name == "rl_bench"
    mt50 = rl.DEFAULT.parent / "mt50_eqm"
    work, out, suffix = rl.parent_paths(mt50, None, None)
    assert out == rl.RESULTS.with_name("rl_mt50_eqm.json") and work.name == "rl_bench_mt50_eqm"
    assert suffix == "_mt50_eqm"
    assert rl.parent_paths(mt50, tmp_path / "w", tmp_path / "o.json")[:2] == (
        tmp_path / "w", tmp_path / "o.json")


def test_a_named_study_on_the_same_parent_keeps_the_others_results_and_curves() -> None:
    work, out, suffix = rl.parent_paths(rl.DEFAULT, None, None, "b64")
    assert out == rl.RESULTS.with_name("rl_b64.json") and work.name == "rl_bench_b64"
    assert suffix == "_b64"
    mt50 = rl.DEFAULT.parent / "mt50_eqm"
    assert rl.parent_paths(mt50, None, None, "shelf")[2] == "_shelf"


def test_paired_counts_the_flips_of_the_same_episodes_and_tests_them() -> None:
    ep = lambda v, s, ok: {"task": "t", "variation": v, "seed": s, "success": ok}  # noqa: E731
    before = [ep(v, 1000, v < 2) for v in range(10)]
    after = [ep(v, 1000, v < 2 or v >= 5) for v in range(10)] + [ep(0, 1001, True)]
    out = paired_success(before, after)  # the unpaired episode (seed 1001) is left out
    assert (out["episodes"], out["before"], out["after"]) == (10, 2, 7)
    assert (out["flipped_up"], out["flipped_down"], out["gain"]) == (5, 0, 0.5)
    assert out["sign_test_p"] == 0.0625 and 0 < out["ci95"][0] < 0.5 < out["ci95"][1] <= 1
    assert paired_success(before, before)["sign_test_p"] == 1.0
