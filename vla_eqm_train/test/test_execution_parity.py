"""The node users launch, the eval-sim client and the RL rollouts command the same actions on the
same episodes.

Both run the shipped checkpoint in closed loop on the lockstep Meta-World bridge, over real DDS:
the policy node through ``vla-eqm demo``'s bring-up (``trigger: observation``, sim time), and the
eval-sim worker's ``PolicyClient``. Both execute through ``vla_eqm_ros.execution.RecedingHorizon``
with the same seed, so every action the simulator executes must agree; the observation stream is
then the same too (lockstep: the sim only moves on a command). Two episodes, because the second
one starts at the stamp the first ended on: before the reset fix, the node paired that first frame
with the previous episode's last state and scored 0/20 on pick-place where the client scored 7/20.

The third path is ``vla-eqm rl``'s rollout worker: the simulator without DDS
(``vla_eqm_sim.direct``) and a fresh RL head, whose mean is zero, so it must act as its parent.

Each path runs in a process of its own, on a DDS domain of its own, so neither can hear the other
(or a node an earlier test left behind).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

TASK, STEPS, SEED = "pick-place-v3", 24, 1000

SCRIPT = """
import json, sys
import numpy as np
from vla_eqm_sim.metaworld_backend import MetaWorldBackend

executed = []
step = MetaWorldBackend.step
def recording(self, action):  # every action the simulator steps with
    executed.append(np.asarray(action, dtype=float).tolist())
    return step(self, action)
MetaWorldBackend.step = recording
path, task, steps, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if path.endswith("node.json"):
    from vla_eqm_train.demo.run import run_demo
    summary = run_demo(None, [task], 2, steps, seed, emit=lambda _line: None)
    info = {"episodes": summary["episodes"], "holds": summary["holds"]}
elif path.endswith("direct.json"):
    from vla_eqm_ros.policy import DEFAULT_CHECKPOINT
    from vla_eqm_train.rl.rollout import run_episode
    from vla_eqm_train.rl.worker import RolloutSession
    session = RolloutSession({"checkpoint": str(DEFAULT_CHECKPOINT), "max_steps": steps,
                              "first_task": task, "seed": 0,
                              "rl": {"method": "residual", "rows": 4}})
    traces = [run_episode(session.sim, session.policy, task, v, seed) for v in (0, 1)]
    info = {"steps": [t.steps for t in traces], "decisions": [len(t.rewards) for t in traces]}
else:
    from vla_eqm_ros.policy import DEFAULT_CHECKPOINT
    from vla_eqm_train.evaluation.sim.worker import run_worker
    records = run_worker({"checkpoint": str(DEFAULT_CHECKPOINT), "max_steps": steps,
                          "episodes": [[task, 0, seed], [task, 1, seed]]}, emit=lambda _l: None)
    info = {"errors": [r["error"] for r in records]}
json.dump({"executed": executed, **info}, open(path, "w"))
"""


def _run(ros_env: dict, tmp_path, name: str, domain: int) -> dict:
    out = tmp_path / f"{name}.json"
    env = {**ros_env, "ROS_DOMAIN_ID": str(domain)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(out), TASK, str(STEPS), str(SEED)],
                          env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.timeout(600)
def test_the_node_and_the_eval_client_execute_the_same_actions(ros_env, tmp_path) -> None:
    base = int(ros_env["ROS_DOMAIN_ID"])  # domains of their own (valid ids are 0..232)
    node = _run(ros_env, tmp_path, "node", (base + 101) % 230 or 1)
    assert node["episodes"] == 2 and node["holds"] == 0, node
    client = _run(ros_env, tmp_path, "client", (base + 151) % 230 or 2)
    assert client["errors"] == ["", ""], client
    assert len(node["executed"]) == len(client["executed"]) == 2 * STEPS
    np.testing.assert_allclose(np.array(node["executed"]), np.array(client["executed"]),
                               rtol=0, atol=1e-6)


@pytest.mark.timeout(600)
def test_the_rl_rollouts_without_dds_execute_what_the_eval_client_executes(ros_env, tmp_path):
    base = int(ros_env["ROS_DOMAIN_ID"])
    direct = _run(ros_env, tmp_path, "direct", (base + 171) % 230 or 3)
    client = _run(ros_env, tmp_path, "client", (base + 151) % 230 or 2)
    assert direct["steps"] == [STEPS, STEPS] and len(client["executed"]) == 2 * STEPS
    assert all(d >= STEPS // 4 for d in direct["decisions"])  # one decision per decode
    np.testing.assert_allclose(np.array(direct["executed"]), np.array(client["executed"]),
                               rtol=0, atol=1e-6)
