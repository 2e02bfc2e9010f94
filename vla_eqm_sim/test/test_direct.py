"""``DirectSim``: the bridge's messages, decoded by the node's assembler, with no DDS."""

from __future__ import annotations

import numpy as np
import pytest

from vla_eqm_ros.contract import Contract
from vla_eqm_ros.images import decode_compressed, encode_compressed
from vla_eqm_sim.direct import DirectSim
from vla_eqm_sim.metaworld_backend import MetaWorldBackend
from vla_eqm_train.commands.dataset import DEFAULT_CONTRACT

COMPRESSED = DEFAULT_CONTRACT.parent / "metaworld_compressed_contract.yaml"


@pytest.fixture(scope="module")
def backend():
    b = MetaWorldBackend("reach-v3", max_steps=5)
    yield b
    b.close()


def test_observations_are_what_a_robot_publishes_and_time_is_lockstep_sim_time(backend):
    contract = Contract.from_yaml(COMPRESSED)
    sim = DirectSim(backend, contract)
    obs = sim.reset("reach-v3", 3, 1000)
    cams = [c.name for c in contract.cameras]
    frames = backend.render(cams, (96, 96))
    for cam in cams:  # the JPEG round trip of the render, exactly as the node decodes it
        expected = decode_compressed(encode_compressed(frames[cam], "jpeg", 90),
                                     "rgb8; jpeg compressed bgr8")
        np.testing.assert_array_equal(obs.images[cam], expected)
    pos, _ = backend.ee_pose()
    fingers = [backend.joint_positions()[backend.joint_names.index(n)]
               for n in ("r_close", "l_close")]
    np.testing.assert_allclose(obs.state, np.r_[pos, fingers], rtol=0, atol=1e-6)
    assert obs.goal == backend.instruction and obs.stamp == pytest.approx(1.0)
    out = sim.step(np.zeros(4))
    assert out.observation is not None
    assert out.observation.stamp == pytest.approx(1.0 + backend.dt)
    for _ in range(4):
        out = sim.step(np.zeros(4))
    assert out.result.done and out.observation is None  # the step limit ended the episode


def test_a_contract_the_bridge_cannot_serve_is_refused_with_the_reason(backend):
    data = Contract.from_yaml(COMPRESSED).to_dict()
    data["cameras"][1]["height"] = 64  # two sizes: the bridge renders one
    with pytest.raises(ValueError, match="one size"):
        DirectSim(backend, Contract.from_dict(data))
