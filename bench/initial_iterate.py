"""How much the solved chunk depends on the solver's initial iterate: the authority that
noise-space steering (``vla-eqm rl --method steer``, DSRL) would have.

For held-out start states of each task, decode one observation from 32 initial iterates
(standard normal, scaled by ``--scales``) and report the standard deviation of the executed rows
across them, in physical action units, per checkpoint and solver setting. A spread near zero means
the decoder maps every initial iterate to the same chunk: steering cannot change what the robot
does, whatever RL learns. Prints one JSON object (``results``: one row per checkpoint, setting and
scale, with ``spread_executed``, ``spread_chunk`` and ``iterations_mean``).

    python bench/initial_iterate.py --checkpoints vla_eqm_ros/vla_eqm_ros/checkpoints/default_eqm \
        vla_eqm_ros/vla_eqm_ros/checkpoints/default_fm --tasks pick-place-v3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoints", nargs="+", type=Path, required=True)
    p.add_argument("--tasks", nargs="+", default=["pick-place-v3"])
    p.add_argument("--states", type=int, default=4, help="held-out start states per task")
    p.add_argument("--draws", type=int, default=32, help="initial iterates per state")
    p.add_argument("--scales", nargs="+", type=float, default=[1.0, 3.0])
    p.add_argument("--seed", type=int, default=1000, help="variation seed of the start states")
    args = p.parse_args()

    from vla_eqm_ros.compat import resolve_contract
    from vla_eqm_ros.policy import Policy
    from vla_eqm_sim.backend import make_backend
    from vla_eqm_sim.direct import DirectSim

    torch.set_num_threads(1)
    rows = []
    for ck in args.checkpoints:
        policy = Policy.from_checkpoint(ck, seed=0)
        cfg = policy.config
        settings = [("stored", {})]
        if cfg.decoder == "eqm":
            settings.append(("tau 0, K_max 50", {"tau": 0.0, "k_max": 50}))
        sim = DirectSim(make_backend("metaworld", task=args.tasks[0]), resolve_contract(cfg))
        m, ex = cfg.model, cfg.execute_steps
        for name, change in settings:
            policy.update_solver(**change)
            for scale in args.scales:
                spread_ex, spread_all, iters = [], [], []
                for task in args.tasks:
                    for v in range(args.states):
                        obs = sim.reset(task, v, args.seed)
                        gen = torch.Generator().manual_seed(v)
                        noise = scale * torch.randn((args.draws, m.horizon, m.action_dim),
                                                    generator=gen)
                        chunks, recs = policy.predict_batch([obs] * args.draws, noise=noise)
                        spread_ex.append(float(chunks[:, :ex].std(0).mean()))
                        spread_all.append(float(chunks.std(0).mean()))
                        iters += [r.iterations for r in recs]
                rows.append({"checkpoint": ck.name, "decoder": cfg.decoder, "setting": name,
                             "scale": scale, "spread_executed": round(np.mean(spread_ex), 6),
                             "spread_chunk": round(np.mean(spread_all), 6),
                             "iterations_mean": round(float(np.mean(iters)), 2)})
                print(rows[-1], file=sys.stderr)
        sim.close()
    print(json.dumps({"tasks": args.tasks, "states_per_task": args.states, "draws": args.draws,
                      "variation_seed": args.seed, "action_units": "physical (range [-1, 1])",
                      "results": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
