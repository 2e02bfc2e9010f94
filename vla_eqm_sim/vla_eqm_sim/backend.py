"""The small interface between the sim bridge node and a MuJoCo simulator.

The node never touches MuJoCo or Meta-World directly: it calls this interface, so that the next
simulators (Meta-World in joint-space control, then bimanual ALOHA) plug in by adding a backend
class and one entry in ``BACKENDS``, without editing the node. Everything here is ROS-free.
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass, field

import numpy as np

CONTROL_MODES = ("cartesian", "joint")


@dataclass(frozen=True)
class ActionSpace:
    """What a command vector means: a name, a lower and an upper bound per dimension.

    ``names`` travel into ActionChunk/JointTrajectory messages and checkpoints, so a policy
    trained on ``[dx, dy, dz, gripper]`` cannot be silently fed a joint vector.
    """

    names: tuple[str, ...]
    low: np.ndarray  # (dim,) float64, bound the simulator clips to
    high: np.ndarray  # (dim,) float64
    control_mode: str = "cartesian"  # one of CONTROL_MODES
    units: str = ""  # human-readable unit note, e.g. "1 = 1 cm mocap delta per step"

    def __post_init__(self) -> None:
        if self.control_mode not in CONTROL_MODES:
            raise ValueError(f"control_mode {self.control_mode!r} not in {CONTROL_MODES}")
        if not (len(self.names) == len(self.low) == len(self.high)):
            raise ValueError(
                f"action spec sizes disagree: {len(self.names)} names, "
                f"{len(self.low)} low, {len(self.high)} high"
            )

    @property
    def dim(self) -> int:
        return len(self.names)


@dataclass
class StepResult:
    """Outcome of one simulator step; ``success`` is latched for the rest of the episode."""

    reward: float
    success: bool
    done: bool
    truncated: bool
    info: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EpisodeId:
    """Which episode is loaded: reproducible from these three values alone."""

    task: str
    variation: int
    seed: int


class SimBackend(abc.ABC):
    """A simulator the sim bridge can run. Implementations must be deterministic given EpisodeId
    and the action sequence, and must never let a non-finite action reach the physics."""

    #: control period of one ``step`` in simulated seconds
    dt: float
    #: the action vector layout and bounds
    action_spec: ActionSpace

    @abc.abstractmethod
    def reset(self, task: str | None = None, variation: int = 0, seed: int = 0) -> None:
        """Load ``task`` (None keeps the current one) in the given variation and reset it."""

    @abc.abstractmethod
    def step(self, action: np.ndarray) -> StepResult:
        """Apply one validated, finite action of shape ``(action_spec.dim,)`` for ``dt``."""

    @abc.abstractmethod
    def hold_action(self) -> np.ndarray:
        """The action that keeps the robot where it is (used when no command arrived in time)."""

    @abc.abstractmethod
    def render(self, cameras: list[str], size: tuple[int, int]) -> dict[str, np.ndarray]:
        """Upright ``(H, W, 3)`` uint8 RGB frames, one per camera name; ``size`` is (H, W)."""

    @property
    @abc.abstractmethod
    def episode(self) -> EpisodeId:
        """The episode currently loaded."""

    @property
    @abc.abstractmethod
    def instruction(self) -> str:
        """Natural-language instruction of the current task."""

    @property
    @abc.abstractmethod
    def success(self) -> bool:
        """Whether the task succeeded at any step of this episode (latched)."""

    @property
    @abc.abstractmethod
    def done(self) -> bool:
        """Whether the episode is over; ``step`` must not be called until the next reset."""

    @property
    @abc.abstractmethod
    def step_count(self) -> int:
        """Steps since the last reset."""

    @property
    @abc.abstractmethod
    def max_steps(self) -> int:
        """Episode length limit."""

    @property
    @abc.abstractmethod
    def cameras(self) -> list[str]:
        """Camera names this backend can render."""

    @property
    @abc.abstractmethod
    def joint_names(self) -> list[str]:
        """Names of the robot joints, as the real robot names them."""

    @abc.abstractmethod
    def joint_positions(self) -> np.ndarray:
        """(n_joints,) positions in rad or m, in ``joint_names`` order."""

    @abc.abstractmethod
    def joint_velocities(self) -> np.ndarray:
        """(n_joints,) velocities in rad/s or m/s, in ``joint_names`` order."""

    @abc.abstractmethod
    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """End-effector pose in the world frame: position (3,) m, quaternion (4,) as x, y, z, w."""

    @abc.abstractmethod
    def task_state(self) -> np.ndarray:
        """Privileged simulator state (object poses, goal) for scripted experts only."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release renderers and simulator memory."""


# backend name -> "module:Class"; imported lazily so a missing simulator breaks only its backend
BACKENDS: dict[str, str] = {
    "metaworld": "vla_eqm_sim.metaworld_backend:MetaWorldBackend",
}


def make_backend(name: str, **kwargs: object) -> SimBackend:
    """Instantiate a registered backend by name; unknown names fail with the list of known ones."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; known: {sorted(BACKENDS)}")
    module_name, class_name = BACKENDS[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    backend: SimBackend = cls(**kwargs)
    return backend
