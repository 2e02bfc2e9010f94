"""Offline bag replay on bags the sim bridge recorded: finite metrics, tau scan, warm-start
ablation, determinism, and the report the CLI writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from eval_bag_support import K_MAX, debug_checkpoint, record_bags

from vla_eqm_ros.checkpoint import load_checkpoint
from vla_eqm_ros.compat import check_compatible, resolve_contract
from vla_eqm_train.cli import main as vla_eqm
from vla_eqm_train.evaluation.bag.iterate_probe import probe_iterates
from vla_eqm_train.evaluation.bag.replay import (
    ReplaySetting,
    episode_observations,
    load_episodes,
    make_policy,
    replay_episode,
    settings_grid,
)

STEPS = 12
TAUS = [0.05, 0.5, 0.75, 1.0, 2.0]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("evalbag")
    bags = record_bags(root / "bags", episodes=2, steps=STEPS)
    ckpt = debug_checkpoint(root / "ckpt")
    cfg, model = load_checkpoint(ckpt)
    contract = resolve_contract(cfg)
    check_compatible(contract, cfg)
    episodes = [ep for b in bags for ep in load_episodes(b, contract)]
    return {"root": root, "bags": bags, "ckpt": ckpt, "cfg": cfg, "model": model,
            "contract": contract, "episodes": episodes}


def _replay(setup: dict, setting: ReplaySetting, episode: int = 0):
    return replay_episode(setup["model"], setup["cfg"], setup["episodes"][episode], setting,
                          setup["contract"].control_period)


def test_a_bag_recorded_by_the_sim_bridge_replays_with_finite_metrics(setup):
    episode = setup["episodes"][0]
    assert episode.length == STEPS  # one labelled tick per recorded command
    run = _replay(setup, ReplaySetting("eqm", 2, tau=0.1, warm_start="shifted"))
    assert [c.tick for c in run.cycles] == list(range(0, STEPS, 2))
    for c in run.cycles:
        values = [c.first["l1"], c.first["l2"], c.chunk["l1"], c.chunk["l2"], c.residual,
                  c.decode_ms, *c.first["abs"], *c.chunk["abs"], *c.chunk["sq"]]
        assert all(math.isfinite(v) for v in values)
        assert 1 <= c.iterations <= K_MAX and len(c.residual_trace) == c.iterations
        assert c.stop_reason in ("threshold", "k_max")
        assert c.chunk["rows"] == min(8, STEPS - c.tick)  # H = 8, masked at the episode end
    assert run.cycles[0].jump is None
    assert all(c.jump is not None and math.isfinite(c.jump) for c in run.cycles[1:])


def test_iterations_do_not_increase_as_tau_grows(setup):
    # Warm start none + the same noise for every setting: each decode follows the same solver
    # path under every tau, so a larger tau can only stop earlier.
    runs = [_replay(setup, s, episode=e)
            for e in (0, 1) for s in settings_grid("eqm", TAUS, ["none"], [], 2)]
    per_tau = np.array([[c.iterations for c in r.cycles] for r in runs[:len(TAUS)]])
    assert np.all(np.diff(per_tau, axis=0) <= 0), per_tau
    means = [np.mean([c.iterations for r in runs[i::len(TAUS)] for c in r.cycles])
             for i in range(len(TAUS))]
    assert all(a >= b for a, b in zip(means, means[1:], strict=False)), means
    assert means[0] > means[-1], "the scan must span depths, not sit at one"


def test_the_warm_start_ablation_runs_and_never_carries_a_chunk_across_episodes(setup):
    for mode in ("none", "copy", "shifted"):
        for e in (0, 1):
            run = _replay(setup, ReplaySetting("eqm", 2, tau=0.5, warm_start=mode), e)
            used = [c.warm_start_used for c in run.cycles]
            assert used[0] is False  # the first decode of every episode starts cold
            assert all(used[1:]) == (mode != "none") and any(used) == (mode != "none")


def test_the_same_setting_on_the_same_bag_reproduces_exactly(setup):
    setting = ReplaySetting("eqm", 3, tau=0.5, warm_start="shifted")
    a, b = _replay(setup, setting), _replay(setup, setting)
    assert a.seed == b.seed
    for x, y in zip(a.cycles, b.cycles, strict=True):
        assert (x.iterations, x.residual, x.first, x.chunk, x.jump) == \
               (y.iterations, y.residual, y.first, y.chunk, y.jump)


def test_the_iterate_probe_pairs_every_iterate_with_its_residual_and_error(setup):
    episode = setup["episodes"][0]
    policy = make_policy(setup["model"], setup["cfg"], None, seed=1)
    obs = episode_observations(episode, setup["contract"].control_period)
    probe = probe_iterates(policy, obs[4], episode.actions, 4, k_max=K_MAX, seed=1)
    assert len(probe["residual"]) == len(probe["first_l2"]) == len(probe["chunk_l2"]) == K_MAX
    assert all(math.isfinite(v) for v in probe["residual"] + probe["first_l2"])
    assert probe["argmin_residual"] == int(np.argmin(probe["residual"])) + 1


def test_k_max_reaches_every_replay_and_the_iterate_probe(setup, tmp_path):
    out = tmp_path / "report"
    rc = vla_eqm(["eval-bag", "--checkpoint", str(setup["ckpt"]), "--bags", str(setup["bags"][0]),
                  "--tau", "0.001", "--k-max", "3", "--probe-cycles", "1", "--out", str(out),
                  "--no-progress"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and report["solver"]["k_max"] == 3
    assert report["aggregates"]["tau=0.001 ws=shifted"]["iterations"]["max"] == 3
    assert [len(p["residual"]) for e in report["episodes"] for p in e["probe"]] == [3]


def test_the_cli_writes_a_complete_report_with_every_metric_and_plot(setup, tmp_path):
    out = tmp_path / "report"
    rc = vla_eqm(["eval-bag", "--checkpoint", str(setup["ckpt"]), "--bags",
                  str(setup["bags"][0].parent), "--tau", "0.5,2", "--warm-start",
                  "none,copy,shifted", "--probe-cycles", "2", "--out", str(out),
                  "--no-progress"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and report["bags"] == {"total": 2, "ok": 2, "failed": []}
    assert [s["name"] for s in report["settings"]] == [
        f"tau={t} ws={w}" for w in ("none", "copy", "shifted") for t in ("0.5", "2")]
    for agg in report["aggregates"].values():
        assert agg["episodes_ok"] == 2 and agg["cycles"] == 2 * len(range(0, STEPS, 2))
        assert len(agg["first_action"]["l1_per_dim"]) == 4 == len(agg["chunk"]["l2_per_dim"])
        assert agg["decode_ms"]["p50"] > 0 and agg["iterations"]["mean"] >= 1
    assert report["aggregates"]["tau=2 ws=none"]["iterations"]["max"] == 1
    for e in report["episodes"]:
        assert e["status"] == "ok" and len(e["settings"]) == 6 and len(e["probe"]) == 2
        assert e["task"] == "button-press-topdown-v3"
    md = (out / "report.md").read_text()
    assert "INCOMPLETE" not in md and "| tau=0.5 ws=shifted | 2/0 |" in md
    for png in ("error_vs_tau", "iterations_vs_tau", "iterations_cold_vs_warm",
                "residual_traces", "boundary_jumps", "error_vs_iterations"):
        data = (out / f"{png}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, png
        assert f"]({png}.png)" in md


def test_the_cli_uses_the_checkpoints_settings_when_no_scan_is_given(setup, tmp_path):
    rc = vla_eqm(["eval-bag", "--checkpoint", str(setup["ckpt"]), "--bags",
                  str(setup["bags"][1]), "--out", str(tmp_path), "--probe-cycles", "0",
                  "--no-progress"])
    assert rc == 0
    report = json.loads((tmp_path / "report.json").read_text())
    cfg = setup["cfg"]
    assert report["settings"] == [{
        "name": f"tau={cfg.solver.tau:g} ws={cfg.warm_start.mode}", "decoder": "eqm",
        "execute_steps": cfg.execute_steps, "tau": cfg.solver.tau,
        "warm_start": cfg.warm_start.mode, "fm_steps": None}]
    assert Path(report["episodes"][0]["bag"]) == setup["bags"][1]


def test_an_fm_checkpoint_scans_euler_steps_instead_of_tau(setup, tmp_path):
    ckpt = debug_checkpoint(tmp_path / "fm", decoder="fm")
    rc = vla_eqm(["eval-bag", "--checkpoint", str(ckpt), "--decoder", "fm", "--fm-steps", "2,5",
                  "--bags", str(setup["bags"][0]), "--out", str(tmp_path / "r"),
                  "--no-progress"])
    assert rc == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["complete"] and list(report["aggregates"]) == ["fm steps=2", "fm steps=5"]
    for steps, agg in zip((2, 5), report["aggregates"].values(), strict=True):
        assert agg["iterations"]["max"] == steps == agg["iterations"]["p50"]
        assert agg["stop_reasons"] == {"fixed_steps": agg["cycles"]}
        assert math.isfinite(agg["first_action"]["l2"])
    assert (tmp_path / "r" / "error_vs_tau.png").is_file()
