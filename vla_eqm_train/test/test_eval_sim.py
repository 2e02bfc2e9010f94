"""eval-sim's planning, aggregation and override handling (the closed loop itself runs in
test_end_to_end.py)."""

from __future__ import annotations

import argparse

import pytest

from vla_eqm_ros.config import get_preset
from vla_eqm_train.commands.eval_sim import (
    _apply_overrides,
    add_arguments,
    aggregate,
    overrides_of,
    plan,
)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_plan_uses_held_out_variation_sets_and_moves_to_the_next_set_after_fifty():
    episodes = plan(["a", "b"], 52, seed=1000)
    assert episodes[0] == ["a", 0, 1000] and episodes[49] == ["a", 49, 1000]
    assert episodes[50] == ["a", 0, 1001]  # never repeats a start state
    assert len(episodes) == 104 and episodes[52] == ["b", 0, 1000]


def test_the_report_holds_per_task_success_iterations_and_latency_and_the_mean_over_tasks():
    recs = [
        {"task": "a", "success": True, "steps": 40, "iterations": [3, 5], "decode_ms": [2.0, 4.0]},
        {"task": "a", "success": False, "steps": 200, "iterations": [7], "decode_ms": [6.0]},
        {"task": "b", "success": True, "steps": 30, "iterations": [1], "decode_ms": [1.0]},
    ]
    report = aggregate(recs, ["a", "b"])
    assert report["tasks"]["a"]["success_rate"] == 0.5
    assert report["tasks"]["a"]["episodes"] == 2
    assert report["tasks"]["a"]["iters_p50"] == 5.0
    assert report["tasks"]["a"]["decode_ms_p50"] == 4.0
    assert report["tasks"]["b"]["success_rate"] == 1.0
    assert report["mean_success"] == 0.75


def test_command_line_decoder_overrides_reach_the_config_and_bad_values_are_refused():
    args = _args("--tau", "0.05", "--k-max", "7", "--warm-start", "copy", "--fm-steps", "4",
                 "--execute-steps", "2", "--warm-start-tail", "noise")
    changes = overrides_of(args)
    cfg = _apply_overrides(get_preset("default"), changes)
    assert (cfg.solver.tau, cfg.solver.k_max, cfg.fm.steps, cfg.execute_steps) == (0.05, 7, 4, 2)
    assert (cfg.warm_start.mode, cfg.warm_start.tail) == ("copy", "noise")
    with pytest.raises(ValueError, match="tau"):
        _apply_overrides(get_preset("default"), overrides_of(_args("--tau", "-1")))


def test_no_overrides_means_the_checkpoints_own_settings():
    assert overrides_of(_args()) == {}


def test_the_episode_log_keeps_finished_episodes_and_refuses_other_settings(tmp_path):
    from vla_eqm_train.commands.eval_sim import EpisodeLog

    identity = {"weights_sha256": "ab", "overrides": {}, "max_steps": 500, "policy_seed": 0,
                "expert": False}
    log = EpisodeLog(tmp_path / "ep.jsonl", identity)
    log.append({"task": "reach-v3", "variation": 0, "seed": 1000, "success": True, "error": ""})
    log.append({"task": "reach-v3", "variation": 1, "seed": 1000, "success": False,
                "error": "reset timed out"})  # failed runs are run again
    with (tmp_path / "ep.jsonl").open("a") as fh:
        fh.write('{"task": "reach-v3", "vari')  # cut off by an interruption
    again = EpisodeLog(tmp_path / "ep.jsonl", identity)
    plan = [["reach-v3", 0, 1000], ["reach-v3", 1, 1000], ["reach-v3", 2, 1000]]
    assert [r["variation"] for r in again.records(plan)] == [0]
    assert again.records([["reach-v3", 5, 1000]]) == []
    again.append({"task": "reach-v3", "variation": 2, "seed": 1000, "success": True,
                  "error": ""})  # after the cut-off line, on a line of its own
    assert [r["variation"] for r in again.records(plan)] == [0, 2]
    with pytest.raises(ValueError, match="max_steps"):
        EpisodeLog(tmp_path / "ep.jsonl", {**identity, "max_steps": 100})


def test_a_log_does_not_resume_under_a_changed_checkpoint_default(tmp_path):
    """The identity carries the effective decoder settings, not only the overrides: a log
    written under one shipped warm start must not silently count under another."""
    from vla_eqm_ros import settings as decoder
    from vla_eqm_ros.checkpoint import load_config
    from vla_eqm_ros.policy import DEFAULT_CHECKPOINT
    from vla_eqm_train.commands.eval_sim import EpisodeLog, log_identity

    config = load_config(DEFAULT_CHECKPOINT)
    run = {"overrides": {}, "max_steps": 200, "seed": 0, "expert": False, "bridge": {}}
    before = log_identity(run, DEFAULT_CHECKPOINT, config)
    assert before["decoder"]["warm_start"] == config.warm_start.mode
    EpisodeLog(tmp_path / "ep.jsonl", before)
    other = "none" if config.warm_start.mode != "none" else "copy"
    after = log_identity(run, DEFAULT_CHECKPOINT, decoder.apply(config, {"warm_start": other}))
    with pytest.raises(ValueError, match="decoder"):
        EpisodeLog(tmp_path / "ep.jsonl", after)


def test_probe_flags_become_bridge_parameters_and_a_probed_log_is_not_a_clean_one(tmp_path):
    from pathlib import Path

    from vla_eqm_train.commands.eval_sim import log_identity, probes_of

    assert probes_of(_args()) == {}
    assert probes_of(_args("--image-noise", "12", "--wrong-goal")) == {
        "image_noise_std": 12.0, "wrong_goal": True}
    with pytest.raises(ValueError, match="image-noise"):
        probes_of(_args("--image-noise", "300"))
    settings = {"overrides": {}, "max_steps": 500, "seed": 0, "expert": True, "bridge": {}}
    clean = log_identity(settings, Path(tmp_path))
    assert "bridge" not in clean  # logs written before the probes existed still resume
    probed = log_identity({**settings, "bridge": {"wrong_goal": True}}, Path(tmp_path))
    assert probed["bridge"] == {"wrong_goal": True} and probed != clean
