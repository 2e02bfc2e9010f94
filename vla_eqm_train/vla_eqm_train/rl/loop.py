"""The RL run: rollouts in worker processes, PPO on the head, evaluations, a resumable state.

One iteration = ``episodes_per_iteration`` exploring episodes per task on training variations
(seed ``train_seed``), then one PPO update of the head. Every ``eval_every`` iterations, and at
iteration 0 (the parent) and at the end, the head's mean is evaluated on eval-sim's held-out
variations; no checkpoint is ever chosen by those evaluations (the last one ships), so the final
figure is not a maximum over noisy evaluations.

``run_dir/rl_state.pt`` holds the head, the optimizer, the generator, the counters and the curve
after every iteration: ``--resume`` continues from it, and a different config refuses to.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_eqm_train.rl.config import RLTrainConfig

STATE = "rl_state.pt"
CURVE = "learning_curve.png"
REPORT = "rl_report.json"


def episode_plan(tasks: list[str], per_task: int, variation_seed: int, first: int,
                 explore_base: int | None) -> list[list[Any]]:
    """[task, variation, seed, explore_seed | None] for ``per_task`` episodes of every task,
    variations ``first ..`` of the ``variation_seed`` sets (rolling into the next seed past 50,
    as eval-sim does), interleaved over tasks."""
    from vla_eqm_sim.record_worker import variation_of

    out = []
    for i in range(per_task):
        for t, task in enumerate(tasks):
            explore = None if explore_base is None else explore_base + 1000 * t + i
            out.append([task, *variation_of(first + i, variation_seed), explore])
    return out


class RLRun:
    """``vla-eqm rl``: see the module docstring."""

    def __init__(self, cfg: RLTrainConfig, checkpoint: Path, out: Path, run_dir: Path,
                 resume: bool = False, progress: bool = True) -> None:
        from vla_eqm_ros.checkpoint import load_checkpoint
        from vla_eqm_ros.config import RLConfig
        from vla_eqm_ros.rl_head import attach_rl_head
        from vla_eqm_sim.instructions import instruction_for

        parent_cfg, self.model = load_checkpoint(checkpoint)
        tasks = list(cfg.tasks) or list(parent_cfg.provenance.get("dataset_tasks") or [])
        if not tasks:
            raise ValueError(f"{checkpoint} records no training tasks; pass --tasks")
        self.cfg = cfg.replace(tasks=tuple(tasks))
        goals = tuple(map(instruction_for, tasks))  # the head acts on these only
        if parent_cfg.rl.method == "none":
            rows = (parent_cfg.execute_steps if cfg.method == "residual"
                    else parent_cfg.model.horizon)
            attach_rl_head(self.model, RLConfig(method=cfg.method, rows=rows, hidden=cfg.hidden,
                                                scale=cfg.scale, init_std=cfg.init_std,
                                                goals=goals))
        elif parent_cfg.rl.method != cfg.method:
            raise ValueError(f"{checkpoint} already has a {parent_cfg.rl.method} head; "
                             f"fine-tune it with --method {parent_cfg.rl.method}")
        elif parent_cfg.rl.goals:  # fine-tuned further: the head also acts on this run's tasks
            new = tuple(g for g in goals if g not in parent_cfg.rl.goals)
            self.model.config = self.model.config.replace(
                rl=dataclasses.replace(parent_cfg.rl, goals=parent_cfg.rl.goals + new))
        self.head = self.model.rl_head
        assert self.head is not None
        self.checkpoint, self.out, self.run_dir = Path(checkpoint), Path(out), Path(run_dir)
        self.progress = progress
        self.optimizer = torch.optim.Adam(self.head.parameters(), lr=cfg.lr)
        self.generator = torch.Generator()
        self.generator.manual_seed(cfg.seed)
        self.iteration, self.env_steps, self.wall_s = 0, 0, 0.0
        self.curve: list[dict[str, Any]] = []
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume and (self.run_dir / STATE).is_file():
            self._load_state()
        elif (self.run_dir / STATE).is_file():
            raise ValueError(f"{self.run_dir / STATE} exists: pass --resume to continue it, or "
                             "choose another --run-dir")

    # ------------------------------------------------------------------------------ state
    def _settings(self) -> dict[str, Any]:
        d = self.cfg.to_dict()
        for key in ("iterations", "time_limit_min", "workers", "eval_every", "extra"):
            d.pop(key)  # what may change between resumes
        return {**d, "checkpoint": str(self.checkpoint.resolve())}

    def _load_state(self) -> None:
        state = torch.load(self.run_dir / STATE, weights_only=False)
        if state["settings"] != self._settings():
            changed = sorted(k for k in self._settings()
                             if state["settings"].get(k) != self._settings()[k])
            raise ValueError(f"{self.run_dir / STATE} was run with other settings ({changed}); "
                             "use another --run-dir")
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.iteration, self.env_steps = state["iteration"], state["env_steps"]
        self.wall_s, self.curve = state["wall_s"], state["curve"]

    def _save_state(self) -> None:
        state = {"settings": self._settings(), "head": self.head.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
                 "iteration": self.iteration, "env_steps": self.env_steps,
                 "wall_s": self.wall_s, "curve": self.curve}
        tmp = self.run_dir / (STATE + ".tmp")
        torch.save(state, tmp)
        tmp.replace(self.run_dir / STATE)

    # ---------------------------------------------------------------------------- rollouts
    def _spec(self) -> dict[str, Any]:
        rl = self.model.config.rl
        return {"checkpoint": str(self.checkpoint), "max_steps": self.cfg.max_steps,
                "first_task": self.cfg.tasks[0], "seed": self.cfg.seed, "threads": 1,
                "rl": {"method": rl.method, "rows": rl.rows, "hidden": rl.hidden,
                       "scale": rl.scale, "init_std": rl.init_std, "goals": list(rl.goals)}}

    def _rollouts(self, pool: Any, episodes: list[list[Any]], tag: str, what: str
                  ) -> tuple[list[dict[str, Any]], list[dict[str, np.ndarray]]]:
        """Run ``episodes`` on the pool; returns their summaries and their decisions."""
        from safetensors.torch import save_file
        from tqdm import tqdm

        head_file = self.run_dir / "head.safetensors"
        save_file({k: v.detach().contiguous() for k, v in self.head.state_dict().items()},
                  str(head_file))
        folder = self.run_dir / "rollouts"
        folder.mkdir(exist_ok=True)
        per_job = max(1, len(episodes) // (4 * self.cfg.workers))
        jobs = [{"head": str(head_file), "episodes": episodes[i:i + per_job],
                 "out": str(folder / f"{tag}_{i:05d}.npz")}
                for i in range(0, len(episodes), per_job)]
        summaries: list[dict[str, Any]] = []
        with tqdm(total=len(episodes), desc=what, unit="ep", disable=not self.progress,
                  file=sys.stderr) as progress:
            def on_event(event: dict[str, Any]) -> None:
                if event.get("event") == "episode":
                    summaries.append(event)
                    rate = np.mean([s["success"] for s in summaries])
                    progress.set_postfix(success=f"{rate:.2f}")
                    progress.update(1)
            errors = pool.run(jobs, on_event)
        if errors:
            raise RuntimeError("; ".join(errors))
        decisions = []
        for job in jobs:
            with np.load(job["out"]) as data:
                arrays = {k: data[k] for k in data.files}
            Path(job["out"]).unlink()
            for e in np.unique(arrays["episode"]):
                rows = arrays["episode"] == e
                decisions.append({k: v[rows] for k, v in arrays.items() if k != "episode"})
        return summaries, decisions

    def evaluate(self, pool: Any) -> dict[str, Any]:
        """The head's mean on held-out variations: success and solver iterations per task."""
        episodes = episode_plan(list(self.cfg.tasks), self.cfg.eval_episodes, self.cfg.eval_seed,
                                0, None)
        summaries, _ = self._rollouts(pool, episodes, f"eval{self.iteration:05d}",
                                      f"eval @ iteration {self.iteration}")
        return _per_task(summaries, list(self.cfg.tasks))

    # -------------------------------------------------------------------------------- loop
    def run(self) -> dict[str, Any]:
        from vla_eqm_sim.workers import JobPool
        from vla_eqm_train.rl.ppo import Batch, ppo_update

        cfg = self.cfg
        limit_s = cfg.time_limit_min * 60 if cfg.time_limit_min > 0 else float("inf")
        stopped = "iterations"
        with JobPool("vla_eqm_train.rl.worker", cfg.workers, json.dumps(self._spec())) as pool:
            if not self.curve:  # iteration 0: the parent, before any update
                t0 = time.monotonic()
                self.curve.append({"iteration": 0, "env_steps": 0, "wall_s": 0.0,
                                   "eval": self.evaluate(pool)})
                self.wall_s += time.monotonic() - t0
                self._save_state()
            while self.iteration < cfg.iterations:
                if self.wall_s >= limit_s:
                    stopped = "time_limit"
                    break
                t0 = time.monotonic()
                base = int(torch.randint(0, 2**30, (1,), generator=self.generator))
                episodes = episode_plan(list(cfg.tasks), cfg.episodes_per_iteration,
                                        cfg.train_seed,
                                        self.iteration * cfg.episodes_per_iteration, base)
                summaries, decisions = self._rollouts(pool, episodes, f"it{self.iteration:05d}",
                                                      f"rollouts {self.iteration + 1}"
                                                      f"/{cfg.iterations}")
                stats = ppo_update(self.head, self.optimizer,
                                   Batch.from_episodes(decisions, cfg.gamma, cfg.gae_lambda),
                                   clip=cfg.clip, epochs=cfg.epochs, minibatch=cfg.minibatch,
                                   value_coef=cfg.value_coef, entropy_coef=cfg.entropy_coef,
                                   target_kl=cfg.target_kl, max_grad_norm=cfg.max_grad_norm,
                                   generator=self.generator)
                self.iteration += 1
                self.env_steps += int(sum(s["steps"] for s in summaries))
                row: dict[str, Any] = {"iteration": self.iteration, "env_steps": self.env_steps,
                                       "train": _per_task(summaries, list(cfg.tasks)),
                                       "ppo": stats,
                                       "std": float(self.head.log_std.detach().exp().mean())}
                last = self.iteration == cfg.iterations
                if last or (cfg.eval_every and self.iteration % cfg.eval_every == 0):
                    row["eval"] = self.evaluate(pool)
                self.wall_s += time.monotonic() - t0
                row["wall_s"] = round(self.wall_s, 1)
                self.curve.append(row)
                self._save_state()
                self._write_outputs(stopped="running")
            if "eval" not in self.curve[-1]:  # "after" must score the head that ships
                t0 = time.monotonic()
                self.curve[-1]["eval"] = self.evaluate(pool)
                self.wall_s += time.monotonic() - t0
                self._save_state()
        return self._write_outputs(stopped)

    # ----------------------------------------------------------------------------- outputs
    def _write_outputs(self, stopped: str) -> dict[str, Any]:
        """The checkpoint (the parent plus the head), the report and the curve PNG."""
        from vla_eqm_ros.checkpoint import save_checkpoint
        from vla_eqm_train.rl.plots import plot_curve

        cfg = self.model.config
        provenance = {**cfg.provenance, "rl": {
            "parent": str(self.checkpoint), "method": self.cfg.method,
            "iterations": self.iteration, "env_steps": self.env_steps,
            "tasks": list(self.cfg.tasks), "wall_s": round(self.wall_s, 1)}}
        save_checkpoint(self.out, self.model, cfg.replace(provenance=provenance))
        report = report_of(self.curve, self.cfg, self.wall_s, stopped)
        report.update({"checkpoint": str(self.out), "parent": str(self.checkpoint)})
        (self.run_dir / REPORT).write_text(json.dumps(report, indent=1) + "\n")
        plot_curve(self.curve, self.run_dir / CURVE, title=f"{self.cfg.method} RL on "
                   + ", ".join(self.cfg.tasks))
        return report


def _per_task(summaries: list[dict[str, Any]], tasks: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for task in tasks:
        mine = [s for s in summaries if s["task"] == task]
        iters = [i for s in mine for i in s.get("iterations", [])]
        out[task] = {"success": float(np.mean([s["success"] for s in mine])) if mine else None,
                     "episodes": len(mine),
                     "iterations_mean": float(np.mean(iters)) if iters else None}
    return out


def report_of(curve: list[dict[str, Any]], cfg: RLTrainConfig, wall_s: float, stopped: str
              ) -> dict[str, Any]:
    """Before (iteration 0) and after (the last evaluation) per task, with the run's cost."""
    evals = [row for row in curve if "eval" in row]
    before, after = evals[0], evals[-1]
    tasks = {t: {"before": before["eval"][t]["success"], "after": after["eval"][t]["success"],
                 "iterations_before": before["eval"][t]["iterations_mean"],
                 "iterations_after": after["eval"][t]["iterations_mean"],
                 "episodes": after["eval"][t]["episodes"]} for t in cfg.tasks}
    return {"method": cfg.method, "tasks": tasks, "after_iteration": after["iteration"],
            "iterations": curve[-1]["iteration"], "env_steps": curve[-1]["env_steps"],
            "wall_s": round(wall_s, 1), "workers": cfg.workers,
            "cpu_hours": round(wall_s * cfg.workers / 3600, 3), "stopped": stopped,
            "eval_seed": cfg.eval_seed, "train_seed": cfg.train_seed,
            "config": cfg.to_dict(), "curve": curve}
