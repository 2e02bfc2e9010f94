"""One RL rollout worker: the frozen policy, its RL head and a ``DirectSim``, no DDS.

``python -m vla_eqm_train.rl.worker SPEC_JSON`` serves ``vla_eqm_sim.workers.JobPool`` jobs:
``{"head": FILE, "episodes": [[task, variation, seed, explore_seed | null], ...], "out": FILE}``.
It loads the head's weights (safetensors), plays each episode (``explore_seed`` null: the head's
mean, as deployed; else a seeded Gaussian draw per decision), writes the decisions of all
episodes to ``out`` (npz) and emits one ``episode`` event per episode, then ``job_done``.
The policy, the backend and the MiniLM goal cache are built once per worker, not per job.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


class RolloutSession:
    """What one worker keeps between jobs (see the module docstring)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        import torch

        from vla_eqm_ros.checkpoint import load_checkpoint
        from vla_eqm_ros.compat import resolve_contract
        from vla_eqm_ros.config import RLConfig
        from vla_eqm_ros.policy import Policy
        from vla_eqm_ros.rl_head import attach_rl_head
        from vla_eqm_sim.backend import make_backend
        from vla_eqm_sim.direct import DirectSim

        torch.set_num_threads(int(spec.get("threads", 1)))
        config, model = load_checkpoint(spec["checkpoint"])
        rl = RLConfig(**spec["rl"])  # the learner's: its goals may extend the parent's
        if config.rl.method == "none":
            attach_rl_head(model, rl)
        else:
            model.config = model.config.replace(rl=rl)
        self.policy = Policy(model, seed=int(spec.get("seed", 0)))
        contract = resolve_contract(config)
        control = "joint" if contract.action.kind == "joint" else "cartesian"
        backend = make_backend("metaworld", task=spec["first_task"],
                               max_steps=int(spec["max_steps"]), control_mode=control)
        self.sim = DirectSim(backend, contract)

    def load_head(self, path: str) -> None:
        from safetensors.torch import load_file

        head = self.policy.model.rl_head
        assert head is not None
        head.load_state_dict(load_file(path))

    def close(self) -> None:
        self.sim.close()


def play(session: RolloutSession, job: dict[str, Any], emit) -> None:
    """Run one job's episodes and write their decisions to ``job["out"]``."""
    import torch

    from vla_eqm_train.rl.rollout import run_episode

    session.load_head(job["head"])
    arrays: dict[str, list[np.ndarray]] = {k: [] for k in
                                           ("features", "actions", "log_probs", "values",
                                            "rewards", "episode")}
    for i, (task, variation, seed, explore) in enumerate(job["episodes"]):
        gen = None
        if explore is not None:
            gen = torch.Generator()
            gen.manual_seed(int(explore))
        session.policy.exploration = gen
        trace = run_episode(session.sim, session.policy, task, variation, seed)
        session.policy.exploration = None
        if trace.features:
            arrays["features"].append(np.stack(trace.features))
            arrays["actions"].append(np.stack(trace.actions))
            arrays["log_probs"].append(np.asarray(trace.log_probs, np.float32))
            arrays["values"].append(np.asarray(trace.values, np.float32))
            arrays["rewards"].append(np.asarray(trace.rewards, np.float32))
            arrays["episode"].append(np.full(len(trace.rewards), i, np.int32))
        emit({"event": "episode", "index": i, **trace.summary(),
              "iterations": trace.iterations})
    if job.get("out"):
        out = Path(job["out"])
        tmp = out.with_suffix(".tmp.npz")
        np.savez(tmp, **{k: (np.concatenate(v) if v else np.zeros(0)) for k, v in arrays.items()})
        tmp.replace(out)
    emit({"event": "job_done"})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m vla_eqm_train.rl.worker SPEC_JSON", file=sys.stderr)
        return 2
    from vla_eqm_sim.workers import serve

    spec = json.loads(argv[0])
    return serve(lambda job: RolloutSession(spec), play)


if __name__ == "__main__":
    sys.exit(main())
