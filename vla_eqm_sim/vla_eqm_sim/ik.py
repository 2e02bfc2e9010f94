"""Differential inverse kinematics: damped least squares on a MuJoCo site Jacobian.

Why DLS: a Cartesian intent (a 1 cm step of the hand) has to become joint targets for an arm
that is redundant (7 joints for a 6-D pose) and passes near singularities (stretched elbow,
aligned wrist). The plain pseudo-inverse blows up there; damped least squares (Wampler 1986,
Buss 2004 "Introduction to inverse kinematics with Jacobian transpose, pseudoinverse and damped
least squares methods", eq. 11) trades a little accuracy for bounded joint steps:

    dq = J^T (J J^T + lambda^2 I)^-1 e  +  (I - J^+ J) k_posture (q_rest - q)

``e`` stacks the position error (m) and the orientation error (axis-angle, rad) scaled by
``orientation_weight`` (m/rad), so that both live in comparable units. The second term moves the
arm inside the null space of the task towards a rest posture, which keeps the redundant joint away
from its limits over long episodes. Each iteration is clipped to ``max_step`` rad per joint and to
the joint limits.

The solver owns a private ``MjData``: it never disturbs the simulation it is asked about, exactly
as a robot's IK works on a kinematic model and the measured joint positions. ROS-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import numpy as np


@dataclass(frozen=True)
class IKConfig:
    """Damped-least-squares settings; the defaults suit a Sawyer-sized arm at 1 cm steps."""

    damping: float = 0.05  # lambda, in the units of e (m); larger = smaller steps near singularity
    orientation_weight: float = 0.3  # m per rad: 1 rad of orientation error counts like 30 cm
    max_step: float = 0.1  # rad per joint per iteration: no posture flips in one step
    iterations: int = 10  # upper bound on Gauss-Newton iterations per solve
    position_tolerance: float = 1e-5  # m: stop once below both tolerances
    orientation_tolerance: float = 1e-4  # rad
    posture_gain: float = 0.05  # k_posture, fraction of (q_rest - q) per iteration, null space

    def __post_init__(self) -> None:
        for name in ("damping", "orientation_weight", "max_step", "position_tolerance",
                     "orientation_tolerance"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations!r}")
        if not 0.0 <= self.posture_gain <= 1.0:
            raise ValueError(f"posture_gain must be in [0, 1], got {self.posture_gain!r}")


@dataclass(frozen=True)
class IKResult:
    q: np.ndarray  # (n,) joint positions, within the joint limits
    position_error: float  # m, remaining distance of the site to the target
    orientation_error: float  # rad, remaining rotation angle
    iterations: int


def orientation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle vector (3,) rotating ``current`` onto ``target`` (both 3x3, world frame)."""
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, (target @ current.T).ravel())
    error = np.zeros(3)
    mujoco.mju_quat2Vel(error, quat, 1.0)
    return error


class DifferentialIK:
    """DLS inverse kinematics of ``site`` over the hinge ``joints`` of a MuJoCo model."""

    def __init__(
        self,
        model: mujoco.MjModel,
        joints: Sequence[str],
        site: str,
        config: IKConfig | None = None,
        rest_posture: np.ndarray | None = None,
    ) -> None:
        self.model = model
        self.config = config or IKConfig()
        self.joints = tuple(joints)
        self._data = mujoco.MjData(model)
        self.qpos_adr = np.array([model.joint(j).qposadr[0] for j in self.joints])
        self.dof_adr = np.array([model.joint(j).dofadr[0] for j in self.joints])
        self.lower = np.array([model.joint(j).range[0] for j in self.joints], dtype=np.float64)
        self.upper = np.array([model.joint(j).range[1] for j in self.joints], dtype=np.float64)
        self.site_id = model.site(site).id
        self.rest_posture = (
            None if rest_posture is None else np.asarray(rest_posture, dtype=np.float64)
        )
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Site position (3,) and rotation matrix (3, 3) in the world frame for joints ``q``."""
        self._data.qpos[self.qpos_adr] = q
        mujoco.mj_kinematics(self.model, self._data)
        mujoco.mj_comPos(self.model, self._data)  # cdof, needed by mj_jacSite
        return (
            self._data.site_xpos[self.site_id].copy(),
            self._data.site_xmat[self.site_id].reshape(3, 3).copy(),
        )

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """(6, n) site Jacobian [translational; rotational] at ``q``, for our joints only."""
        self.forward(q)
        mujoco.mj_jacSite(self.model, self._data, self._jacp, self._jacr, self.site_id)
        return np.vstack([self._jacp[:, self.dof_adr], self._jacr[:, self.dof_adr]])

    def solve(self, q_seed: np.ndarray, position: np.ndarray, rotation: np.ndarray) -> IKResult:
        """Joint positions that put the site at ``position`` with ``rotation``, from ``q_seed``."""
        cfg = self.config
        q = np.clip(np.asarray(q_seed, dtype=np.float64), self.lower, self.upper)
        weights = np.array([1.0, 1.0, 1.0] + [cfg.orientation_weight] * 3)
        n = len(self.joints)
        pos_err = rot_err = np.inf
        iterations = 0
        for iterations in range(1, cfg.iterations + 1):  # noqa: B007 - reported below
            site_pos, site_rot = self.forward(q)
            e_pos = np.asarray(position, dtype=np.float64) - site_pos
            e_rot = orientation_error(np.asarray(rotation, dtype=np.float64), site_rot)
            pos_err, rot_err = float(np.linalg.norm(e_pos)), float(np.linalg.norm(e_rot))
            if pos_err < cfg.position_tolerance and rot_err < cfg.orientation_tolerance:
                break
            mujoco.mj_jacSite(self.model, self._data, self._jacp, self._jacr, self.site_id)
            jac = weights[:, None] * np.vstack(
                [self._jacp[:, self.dof_adr], self._jacr[:, self.dof_adr]]
            )  # (6, n)
            error = weights * np.concatenate([e_pos, e_rot])  # (6,)
            damped = jac @ jac.T + cfg.damping**2 * np.eye(6)
            dq = jac.T @ np.linalg.solve(damped, error)
            if self.rest_posture is not None and cfg.posture_gain > 0:
                # exact null-space projector (the damped one would leak posture into the task)
                projector = np.eye(n) - np.linalg.pinv(jac, rcond=1e-4) @ jac
                dq += projector @ (cfg.posture_gain * (self.rest_posture - q))
            largest = float(np.max(np.abs(dq)))
            if largest > cfg.max_step:
                dq *= cfg.max_step / largest
            q = np.clip(q + dq, self.lower, self.upper)
        else:
            site_pos, site_rot = self.forward(q)
            pos_err = float(np.linalg.norm(np.asarray(position) - site_pos))
            rot_err = float(np.linalg.norm(orientation_error(np.asarray(rotation), site_rot)))
        return IKResult(q, pos_err, rot_err, iterations)
