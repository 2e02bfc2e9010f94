"""Decoder benchmark: solver latency and warm-start depth of the default EqM policy on CPU.

Prints one JSON object on stdout (progress goes to stderr). It replays a sequence of temporally
correlated observations through ``Policy.predict_action_chunk`` and measures, per warm-start mode,
how many field evaluations the solver needs to reach tau, plus the prefix/solve/decode latencies.

Model: the shipped default checkpoint if present (or ``--checkpoint``); otherwise the default
architecture is built and *fitted briefly* on synthetic smooth trajectories (``model_source`` says
which), because iteration counts of an untrained field mean nothing.

Frames (``frames`` in the JSON): a trained Meta-World checkpoint is replayed on demonstration
frames decoded from rosbag2 through the shared decode path: ``--bags`` names them, or one held-out
scripted-expert episode per training task is recorded first through the sim bridge (seed 1000; the
training demos used seed 0). The synthetic model uses its synthetic trajectories.

The synthetic task: three goals, each a smooth periodic 4-d trajectory of one phase psi(t); the
state and the camera image pin psi down, the goal picks the trajectory. A demo frame at time t
carries the chunk a(t + h dt),
h = 0..H-1, so consecutive chunks are exact time shifts of one another, as in a smooth expert demo.

    python bench/decoder.py [--cycles 60] [--tau 0.1] [--execute-steps N] [--checkpoint DIR]
                            [--bags BAG_OR_DIR ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vla_eqm_ros"))

from vla_eqm_ros.config import PolicyConfig, get_preset
from vla_eqm_ros.model import PI0EqMModel
from vla_eqm_ros.observation import Observation
from vla_eqm_ros.policy import DEFAULT_CHECKPOINT, Policy

GOALS = ("trace the red circle", "wave the arm slowly", "draw a figure eight")
OMEGA0 = 2.0  # rad/s, base angular rate of the phase psi = OMEGA0 * t
HARMONIC = np.array([[1, 2, 1, 3], [2, 1, 3, 1], [1, 3, 2, 2]])  # per goal and action dim
THETA = np.array([[0.0, 1.0, 2.0, 3.0], [0.5, 2.5, 1.5, 0.2], [1.2, 0.3, 2.8, 1.9]])
AMP = np.array([1.0, 0.6, 0.8, 0.4])
COLORS = np.array([[230, 40, 40], [40, 200, 60], [50, 80, 230]], dtype=np.float32)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class SyntheticTask:
    """Smooth, goal-dependent periodic trajectories with images; exact chunks for any time t.

    Everything is a function of one phase psi = OMEGA0 t, which the state (cos psi, sin psi,
    cos 2psi, sin 2psi) and the camera (a blob at angle psi, coloured by goal) pin down uniquely,
    so each observation has exactly one expert chunk: a(t)_j = amp_j sin(k_gj psi + theta_gj).
    """

    def __init__(self, cfg: PolicyConfig) -> None:
        m = cfg.model
        if m.action_dim != 4 or m.state_dim != 4:
            raise SystemExit("the synthetic task is 4-d; use a checkpoint with 4-d actions/state")
        self.cfg = cfg
        self.dt = cfg.control_period
        self.cam = m.cameras[0]
        yy, xx = np.mgrid[0:self.cam.height, 0:self.cam.width].astype(np.float32)
        self._grid = (yy, xx)

    def chunk(self, g: int, t: float) -> np.ndarray:
        """(H, d) float32: the expert's actions a(t), a(t + dt), ..."""
        psi = OMEGA0 * (t + self.dt * np.arange(self.cfg.model.horizon))
        return (AMP * np.sin(HARMONIC[g] * psi[:, None] + THETA[g])).astype(np.float32)

    def observation(self, g: int, t: float) -> Observation:
        psi = OMEGA0 * t
        state = np.array([np.cos(psi), np.sin(psi), np.cos(2 * psi), np.sin(2 * psi)],
                         dtype=np.float32)
        yy, xx = self._grid
        h, w = self.cam.height, self.cam.width
        cy, cx = h * (0.5 + 0.3 * np.sin(psi)), w * (0.5 + 0.3 * np.cos(psi))
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.08 * w) ** 2))
        img = 20.0 + blob[..., None] * COLORS[g]
        return Observation(images={self.cam.name: img.clip(0, 255).astype(np.uint8)},
                           state=state, goal=GOALS[g], stamp=t)


    def episodes(self, rng: np.random.Generator, cycles: int, stride: int
                 ) -> Iterator[Iterator[tuple[Observation, np.ndarray, np.ndarray]]]:
        """One sequence per goal: (observation, expert chunk (H, d), valid-row mask (H,))."""
        ones = np.ones(self.cfg.model.horizon, dtype=bool)
        for g in range(len(GOALS)):
            t0 = float(rng.uniform(0.0, 60.0))
            yield ((self.observation(g, t0 + c * stride * self.dt),
                    self.chunk(g, t0 + c * stride * self.dt), ones) for c in range(cycles))


class DemoFrames:
    """Recorded demonstrations, decoded through the shared bag path (what the node would see).

    Each episode is replayed from its first frame; the expert chunk of frame t is the recorded
    commands t .. t+H-1, with rows past the episode's end masked out of the error.
    """

    def __init__(self, cfg: PolicyConfig, bags: list[Path]) -> None:
        from vla_eqm_ros.compat import resolve_contract
        from vla_eqm_train.data.bags import find_bags, read_episode
        from vla_eqm_train.evaluation.bag.replay import episode_observations

        contract = resolve_contract(cfg)
        self.horizon = cfg.model.horizon
        self.data = []
        for bag in find_bags(bags):
            ep = read_episode(bag, contract)
            self.data.append((episode_observations(ep, contract.control_period), ep.actions))
        if not self.data:
            raise SystemExit(f"no rosbag2 episodes under {[str(b) for b in bags]}")
        self.goals = sorted({obs[0].goal for obs, _ in self.data})

    def episodes(self, rng: np.random.Generator, cycles: int, stride: int
                 ) -> Iterator[Iterator[tuple[Observation, np.ndarray, np.ndarray]]]:
        for observations, actions in self.data:
            yield (self._frame(observations, actions, t)
                   for t in range(0, min(len(observations), cycles * stride), stride))

    def _frame(self, observations: list[Observation], actions: np.ndarray, t: int
               ) -> tuple[Observation, np.ndarray, np.ndarray]:
        rows = np.arange(t, t + self.horizon)
        valid = rows < len(actions)
        return observations[t], actions[np.minimum(rows, len(actions) - 1)], valid


def record_heldout_demos(cfg: PolicyConfig, out: Path) -> list[Path]:
    """One scripted-expert episode per training task, recorded through the sim bridge."""
    from vla_eqm_ros.compat import resolve_contract
    from vla_eqm_train.cli import main as vla_eqm

    contract = resolve_contract(cfg)
    tasks = list(cfg.provenance.get("dataset_tasks") or [])
    if not tasks:
        raise SystemExit("the checkpoint names no training tasks: pass --bags")
    size = contract.cameras[0].height
    log(f"recording one held-out expert demo per task ({', '.join(tasks)}) into {out}")
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the bench's JSON
        rc = vla_eqm(["record", "--tasks", ",".join(tasks), "--episodes", "1", "--seed", "1000",
                      "--out", str(out), "--cameras", ",".join(contract.camera_names),
                      "--image-size", str(size), "--no-progress"])
    if rc != 0:
        raise SystemExit(f"recording the held-out demos failed (exit {rc})")
    return [out]


def fit(policy: Policy, task: SyntheticTask, steps: int, batch: int, repeats: int,
        seed: int, lr: float = 2e-3) -> float:
    """Train the model briefly on random demo frames; returns the final loss (EMA)."""
    rng = np.random.default_rng(seed)
    model = policy.model
    pool_t = rng.uniform(0.0, 2 * np.pi / OMEGA0, size=(len(GOALS), 400))
    frames = [(g, t, task.observation(g, t), task.chunk(g, t)) for g in range(len(GOALS))
              for t in pool_t[g]]
    model.action_normalizer.fit(np.stack([f[3] for f in frames]))
    model.state_normalizer.fit(np.stack([f[2].state for f in frames]))
    goal_feats = {k: v for k, v in zip(GOALS, policy.model.goal_features(list(GOALS))
                                       ["goal_embedding"], strict=True)}
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    ema = float("nan")
    cam = task.cam.name
    t0 = time.perf_counter()
    for step in range(steps):
        idx = rng.integers(0, len(frames), size=batch)
        sel = [frames[i] for i in idx]
        b = {
            "images": {cam: torch.from_numpy(np.stack([f[2].images[cam] for f in sel]))},
            "state": torch.from_numpy(np.stack([f[2].state for f in sel])),
            "goal_embedding": torch.stack([goal_feats[f[2].goal] for f in sel]),
            "actions": torch.from_numpy(np.stack([f[3] for f in sel])),
        }
        loss, _ = model(b, generator=gen, repeats=repeats)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        value = float(loss.detach())
        ema = value if step == 0 else 0.95 * ema + 0.05 * value
        if step % 50 == 0 or step == steps - 1:
            log(f"fit step {step}/{steps} loss {ema:.4f} ({time.perf_counter() - t0:.0f} s)")
    model.eval()
    return ema


def run_mode(policy: Policy, task: SyntheticTask | DemoFrames, *, mode: str, tail: str,
             fraction: float, execute_steps: int, cycles: int, seed: int
             ) -> dict[str, list[float]]:
    """Replay up to ``cycles`` correlated frames per sequence, ``execute_steps`` apart; collect
    per-cycle iterations, latencies and the error to the expert chunk (normalized RMS)."""
    policy.update_solver(warm_start_mode=mode, warm_start_tail=tail, warm_start_fraction=fraction)
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {"iters": [], "prefix_ms": [], "solve_ms": [], "decode_ms": [],
                                   "error": [], "warm_used": []}
    scale = policy.model.action_normalizer.std.numpy()
    for sequence in task.episodes(rng, cycles, execute_steps):
        policy.reset()  # a new episode: no warm start across sequences
        for c, (obs, expert, valid) in enumerate(sequence):
            t0 = time.perf_counter()
            chunk, rec = policy.predict_action_chunk(obs, steps_executed=execute_steps)
            decode_ms = (time.perf_counter() - t0) * 1e3
            if c >= 2:  # the first cycles are cold by construction (no previous chunk)
                out["iters"].append(rec.iterations)
                out["prefix_ms"].append(rec.prefix_ms)
                out["solve_ms"].append(rec.solve_ms)
                out["decode_ms"].append(decode_ms)
                out["warm_used"].append(float(rec.warm_start_used))
                err = ((chunk - expert) / scale)[valid]
                out["error"].append(float(np.sqrt(np.mean(err ** 2))))
    return out


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summarize(policy: Policy, task: SyntheticTask | DemoFrames, execute_steps: int, cycles: int,
              fraction: float, seed: int) -> dict[str, float]:
    runs = {}
    for name, mode, tail, frac in (("cold", "none", "noise", fraction),
                                   ("copy", "copy", "noise", 0.5),
                                   ("shifted", "shifted", "noise", fraction),
                                   ("shifted_hold", "shifted", "hold", fraction)):
        runs[name] = run_mode(policy, task, mode=mode, tail=tail, fraction=frac,
                              execute_steps=execute_steps, cycles=cycles, seed=seed)
        log(f"execute_steps={execute_steps} {name}: median iterations "
            f"{p(runs[name]['iters'], 50)}, median error {p(runs[name]['error'], 50):.3f}")
    warm = runs[policy.config.warm_start.tail == "hold" and "shifted_hold" or "shifted"]
    iter_ms = [s / max(i, 1) for s, i in zip(warm["solve_ms"], warm["iters"], strict=True)]
    res = {
        "iter_ms_p50": p(iter_ms, 50),
        "prefix_ms_p50": p(warm["prefix_ms"], 50),
        "decode_ms_p50": p(warm["decode_ms"], 50),
        "decode_ms_p99": p(warm["decode_ms"], 99),
        "decode_ms_p99_cold": p(runs["cold"]["decode_ms"], 99),
    }
    for name, run in runs.items():
        res[f"iters_{name}_p50"] = p(run["iters"], 50)
        res[f"error_{name}_p50"] = p(run["error"], 50)
    return res


def sweep(policy: Policy, task: SyntheticTask | DemoFrames, cycles: int, fraction: float, seed: int
          ) -> list[dict[str, float]]:
    """Median depth and error per (eta, mu, tau), one step executed per cycle (tuning evidence)."""
    rows = []
    for eta in (0.03, 0.05, 0.08):
        for mu in (0.0, 0.3, 0.6):
            for tau in (0.1, 0.2, 0.4):
                policy.update_solver(step_size=eta, momentum=mu, tau=tau)
                row: dict[str, float] = {"step_size": eta, "momentum": mu, "tau": tau}
                for name, mode, tail in (("cold", "none", "noise"), ("shifted", "shifted", "noise"),
                                         ("shifted_hold", "shifted", "hold")):
                    run = run_mode(policy, task, mode=mode, tail=tail, fraction=fraction,
                                   execute_steps=1, cycles=cycles, seed=seed)
                    row[f"iters_{name}_p50"] = p(run["iters"], 50)
                    row[f"error_{name}_p50"] = p(run["error"], 50)
                log(json.dumps(row))
                rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=None, help="checkpoint directory")
    ap.add_argument("--cycles", type=int, default=60, help="decodes per goal and mode")
    ap.add_argument("--tau", type=float, default=None, help="residual threshold (default: config)")
    ap.add_argument("--step-size", type=float, default=None, help="eta (default: config)")
    ap.add_argument("--momentum", type=float, default=None, help="mu (default: config)")
    ap.add_argument("--execute-steps", type=int, default=None,
                    help="steps per cycle for the second measurement (default: config)")
    ap.add_argument("--fraction", type=float, default=None, help="warm-start reused fraction")
    ap.add_argument("--fit-steps", type=int, default=400, help="fit steps without a checkpoint")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--save-fitted", type=Path, default=None, help="save the fitted model here")
    ap.add_argument("--bags", type=Path, nargs="+", default=None,
                    help="demo bags (or folders) to replay with a trained checkpoint (default: "
                         "record one held-out expert episode per training task)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sweep", action="store_true",
                    help="also sweep step size, momentum and tau (tuning evidence)")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ckpt = args.checkpoint or (DEFAULT_CHECKPOINT if (DEFAULT_CHECKPOINT / "config.yaml").is_file()
                               else None)
    if ckpt is not None:
        policy = Policy.from_checkpoint(ckpt, seed=args.seed)
        source = f"checkpoint:{ckpt}"
        fit_loss = None
    else:
        cfg = get_preset("default")
        policy = Policy(PI0EqMModel(cfg), seed=args.seed)
        task = SyntheticTask(cfg)
        t0 = time.perf_counter()
        fit_loss = fit(policy, task, args.fit_steps, batch=16, repeats=16, seed=args.seed)
        source = (f"default architecture fitted for {args.fit_steps} steps on synthetic smooth "
                  f"trajectories ({time.perf_counter() - t0:.0f} s)")
        if args.save_fitted is not None:
            from vla_eqm_ros.checkpoint import save_checkpoint

            save_checkpoint(args.save_fitted, policy.model)
    task: SyntheticTask | DemoFrames
    synthetic = policy.config.provenance.get("dataset_tasks") is None
    with tempfile.TemporaryDirectory(prefix="decoder_bench_") as tmp:
        if synthetic and args.bags is None:
            task, frames = SyntheticTask(policy.config), "synthetic smooth trajectories"
        else:
            bags = args.bags or record_heldout_demos(policy.config, Path(tmp))
            task = DemoFrames(policy.config, bags)
            frames = (f"{len(task.data)} replayed demo episode(s) "
                      f"({'--bags' if args.bags else 'recorded now, seed 1000'}): "
                      f"{', '.join(task.goals)}")
    changes = {k: v for k, v in (("tau", args.tau), ("step_size", args.step_size),
                                 ("momentum", args.momentum)) if v is not None}
    if changes:
        policy.update_solver(**changes)
    cfg = policy.config
    fraction = args.fraction if args.fraction is not None else cfg.warm_start.fraction
    default_exec = args.execute_steps or cfg.execute_steps
    result: dict[str, object] = {
        "device": f"cpu ({platform.processor() or platform.machine()}, "
                  f"{torch.get_num_threads()} torch thread(s), shared 2-core machine)",
        "model_source": source,
        "tau": cfg.solver.tau, "step_size": cfg.solver.step_size,
        "momentum": cfg.solver.momentum, "k_max": cfg.solver.k_max,
        "warm_start_fraction": fraction, "warm_start_default": cfg.warm_start.mode,
        "warm_start_tail_default": cfg.warm_start.tail, "execute_steps": 1,
        "frames": frames, "cycles_per_sequence": args.cycles,
    }
    if fit_loss is not None:
        result["fit_loss"] = fit_loss
    result.update(summarize(policy, task, 1, args.cycles, fraction, args.seed))
    result["default_execute_steps"] = default_exec
    result["at_default_execute_steps"] = summarize(policy, task, default_exec, args.cycles,
                                                   fraction, args.seed)
    if args.sweep:
        result["sweep"] = sweep(policy, task, max(args.cycles // 2, 6), fraction, args.seed)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
