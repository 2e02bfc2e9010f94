"""The simulator as the policy node sees it, without DDS: for RL rollouts, thousands of episodes.

``DirectSim`` steps a ``SimBackend`` in lockstep and turns each step into the messages the sim
bridge would publish (``messages.observation_msgs``: the same renders, the same JPEG encoding),
then decodes them with the node's own ``ObservationAssembler`` under the checkpoint's contract.
An observation here is therefore byte for byte the one the node assembles from live topics or a
bag; only the transport (DDS) is skipped. Time is the bridge's lockstep sim time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_eqm_ros.contract import Contract
from vla_eqm_ros.decode import ObservationAssembler
from vla_eqm_ros.observation import Observation
from vla_eqm_sim.backend import SimBackend, StepResult
from vla_eqm_sim.bringup import contract_bridge_params
from vla_eqm_sim.nodes import messages


@dataclass
class DirectStep:
    """One step: the next observation (None once the episode is over) and the step's result."""

    observation: Observation | None
    result: StepResult


class DirectSim:
    """A backend behind the contract's topics, decoded in process (see the module docstring)."""

    def __init__(self, backend: SimBackend, contract: Contract, jpeg_quality: int = 90) -> None:
        params = contract_bridge_params(contract)  # ValueError when the bridge could not serve it
        self.backend = backend
        self.contract = contract
        self.cameras: list[str] = params["cameras"]
        self.image_size: int = params["image_size"]
        self.transport: str = params["image_transport"]
        self.jpeg_quality = int(jpeg_quality)
        self.assembler = ObservationAssembler(contract, history=2)
        self._topics = self.assembler.topics  # absolute names; the bridge's are relative
        self._steps_total = 0

    def reset(self, task: str, variation: int, seed: int) -> Observation:
        """Load an episode; returns its first observation."""
        self.backend.reset(task, int(variation), int(seed))
        self.assembler.clear()
        self.assembler.set_goal(self.backend.instruction)
        return self._observe()

    def step(self, action: np.ndarray) -> DirectStep:
        """Apply one action (the guard has already checked it, as in the node)."""
        result = self.backend.step(np.asarray(action, dtype=np.float64))
        self._steps_total += 1
        return DirectStep(None if result.done else self._observe(), result)

    def _observe(self) -> Observation:
        ns = messages.sim_time_ns(self._steps_total, self.backend.dt)
        frames = self.backend.render(self.cameras, (self.image_size, self.image_size))
        msgs: dict[str, Any] = messages.observation_msgs(
            self.backend, frames, self.transport, self.jpeg_quality, messages.stamp_from_ns(ns))
        for topic, msg in msgs.items():
            if "/" + topic in self._topics:
                self.assembler.feed("/" + topic, msg)
        assembled = self.assembler.assemble(ns * 1e-9)
        if assembled.observation is None:  # a contract the bridge's topics cannot satisfy
            raise ValueError(f"no observation from the simulator: {assembled.reason}")
        return assembled.observation

    def close(self) -> None:
        self.backend.close()
