"""The node users launch and the eval-sim client command the same actions on the same episodes.

Both run the shipped checkpoint in closed loop on the lockstep Meta-World bridge, over real DDS:
the policy node through ``vla-eqm demo``'s bring-up (``trigger: observation``, sim time), and the
eval-sim worker's ``PolicyClient``. Both execute through ``vla_eqm_ros.execution.RecedingHorizon``
with the same seed, so every action the simulator executes must agree; the observation stream is
then the same too (lockstep: the sim only moves on a command). Two episodes, because the second
one starts at the stamp the first ended on: before the reset fix, the node paired that first frame
with the previous episode's last state and scored 0/20 on pick-place where the client scored 7/20.
"""

from __future__ import annotations

import numpy as np
import pytest

TASK, STEPS, SEED = "pick-place-v3", 24, 1000


@pytest.fixture
def executed(monkeypatch) -> list[np.ndarray]:
    """Every action the simulator steps with (what actually moved the robot)."""
    from vla_eqm_sim.metaworld_backend import MetaWorldBackend

    actions: list[np.ndarray] = []
    step = MetaWorldBackend.step

    def recording(self, action):
        actions.append(np.asarray(action, dtype=np.float64).copy())
        return step(self, action)

    monkeypatch.setattr(MetaWorldBackend, "step", recording)
    return actions


@pytest.mark.timeout(600)
def test_the_node_and_the_eval_client_execute_the_same_actions(executed) -> None:
    from vla_eqm_ros.policy import DEFAULT_CHECKPOINT
    from vla_eqm_train.demo.run import run_demo
    from vla_eqm_train.evaluation.sim.worker import run_worker

    summary = run_demo(None, [TASK], 2, STEPS, SEED, emit=lambda _line: None)
    assert summary["episodes"] == 2 and summary["holds"] == 0, summary
    node = list(executed)
    executed.clear()
    records = run_worker({"checkpoint": str(DEFAULT_CHECKPOINT), "max_steps": STEPS,
                          "episodes": [[TASK, 0, SEED], [TASK, 1, SEED]]}, emit=lambda _l: None)
    assert [r["error"] for r in records] == ["", ""], records
    client = list(executed)
    assert len(node) == len(client) == 2 * STEPS
    np.testing.assert_allclose(np.stack(node), np.stack(client), rtol=0, atol=1e-6)
