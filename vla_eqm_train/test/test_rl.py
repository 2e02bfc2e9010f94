"""``vla-eqm rl``: GAE, the PPO update, and a real run (worker process, Meta-World, the shipped
checkpoint) that resumes, refuses other settings and leaves a checkpoint the policy loads."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from vla_eqm_ros.config import RLConfig, get_preset
from vla_eqm_ros.policy import DEFAULT_CHECKPOINT, Policy
from vla_eqm_ros.rl_head import RLHead
from vla_eqm_sim.instructions import instruction_for
from vla_eqm_train.rl.loop import episode_plan
from vla_eqm_train.rl.ppo import Batch, gae, ppo_update


def test_gae_matches_the_recursion_by_hand():
    rewards, values = np.array([0.0, 0.0, 1.0]), np.array([0.5, 0.6, 0.7])
    g, lam = 0.9, 0.8
    d2 = 1.0 - 0.7
    d1 = 0.0 + g * 0.7 - 0.6
    d0 = 0.0 + g * 0.6 - 0.5
    a2 = d2
    a1 = d1 + g * lam * a2
    a0 = d0 + g * lam * a1
    adv, ret = gae(rewards, values, g, lam)
    np.testing.assert_allclose(adv, [a0, a1, a2])
    np.testing.assert_allclose(ret, adv + values)


def test_ppo_raises_the_probability_of_actions_that_paid():
    cfg = get_preset("debug")
    cfg = cfg.replace(rl=RLConfig(method="steer", rows=cfg.model.horizon, init_std=0.5))
    torch.manual_seed(0)
    head = RLHead(cfg)
    gen = torch.Generator()
    gen.manual_seed(0)
    feats = torch.randn(64, head.in_dim, generator=gen)
    with torch.no_grad():
        actions, logp, values = head.act(feats, gen)
    good = actions[:, 0] > 0  # reward the draws whose first coordinate is positive
    episodes = [{"features": feats[i:i + 1].numpy(), "actions": actions[i:i + 1].numpy(),
                 "log_probs": logp[i:i + 1].numpy(), "values": values[i:i + 1].numpy(),
                 "rewards": np.array([1.0 if good[i] else 0.0])} for i in range(64)]
    batch = Batch.from_episodes(episodes, 0.99, 0.95)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    stats = ppo_update(head, opt, batch, clip=0.2, epochs=4, minibatch=16, value_coef=0.5,
                       entropy_coef=0.0, target_kl=0.0, max_grad_norm=1.0, generator=gen)
    with torch.no_grad():
        after = head.log_prob(feats, actions)
        moved = float(head.mean(feats)[:, 0].mean())
    assert float((after - logp)[good].mean()) > float((after - logp)[~good].mean())
    assert moved > 0
    assert stats["updates"] == 16 and np.isfinite(stats["value_loss"])


def test_rollout_and_evaluation_plans_never_share_a_variation():
    train = episode_plan(["reach-v3"], 60, 2000, 0, 7)
    held_out = episode_plan(["reach-v3"], 20, 1000, 0, None)
    assert {tuple(e[1:3]) for e in train}.isdisjoint({tuple(e[1:3]) for e in held_out})
    assert all(e[3] is not None for e in train) and all(e[3] is None for e in held_out)
    assert train[50][1:3] == [0, 2001]  # past 50 variations: the next seed's set


def _rl(ros_env, tmp_path, *extra):
    cmd = [sys.executable, "-m", "vla_eqm_train.cli", "rl", "--checkpoint",
           str(DEFAULT_CHECKPOINT), "--tasks", "reach-v3", "--out", str(tmp_path / "ck"),
           "--run-dir", str(tmp_path / "run"), "--episodes-per-iteration", "2",
           "--eval-episodes", "1", "--max-steps", "12", "--workers", "1", "--eval-every", "1",
           "--no-progress", *extra]
    return subprocess.run(cmd, env=ros_env, capture_output=True, text=True, timeout=400)


@pytest.mark.timeout(900)
def test_a_run_resumes_refuses_other_settings_and_ships_a_loadable_checkpoint(ros_env, tmp_path):
    first = _rl(ros_env, tmp_path, "--iterations", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    again = _rl(ros_env, tmp_path, "--iterations", "2")
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = _rl(ros_env, tmp_path, "--iterations", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "rl_report.json").read_text())
    assert report["iterations"] == 2 and [r["iteration"] for r in report["curve"]] == [0, 1, 2]
    assert 0 < report["env_steps"] <= 2 * 2 * 12  # two iterations of two 12-step episodes
    task = report["tasks"]["reach-v3"]
    assert task["episodes"] == 1 and task["iterations_after"] >= 1
    assert report["cpu_hours"] > 0 and report["stopped"] == "iterations"
    assert (tmp_path / "run" / "learning_curve.png").stat().st_size > 1000
    other = _rl(ros_env, tmp_path, "--iterations", "3", "--resume", "--max-steps", "13")
    assert other.returncode == 2 and "max_steps" in other.stderr
    policy = Policy.from_checkpoint(tmp_path / "ck", seed=0)
    assert policy.config.rl.method == "residual" and policy.model.rl_head is not None
    assert policy.config.rl.goals == (instruction_for("reach-v3"),)  # its task's only
    assert policy.config.provenance["rl"]["iterations"] == 2
