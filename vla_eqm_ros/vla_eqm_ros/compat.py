"""Which contract serves a checkpoint, and whether it feeds the model what it was built for.

The policy node, bag replay and closed-loop evaluation all answer these two questions; they live
here, ROS-free, so that offline tools need no rclpy to agree with the node.
"""

from __future__ import annotations

from pathlib import Path

from vla_eqm_ros.config import PolicyConfig
from vla_eqm_ros.contract import Contract


def resolve_contract(cfg: PolicyConfig, override: str | Path | None = None) -> Contract:
    """An explicit contract YAML > the checkpoint's contract > the conventional default."""
    if override:
        return Contract.from_yaml(override)
    if cfg.contract:
        return Contract.from_dict(cfg.contract)
    m = cfg.model
    return Contract.default_for(
        cameras=[(c.name, c.height, c.width) for c in m.cameras],
        state_names=list(cfg.state_names) or [f"state_{i}" for i in range(m.state_dim)],
        action_names=list(cfg.action_names) or [f"action_{i}" for i in range(m.action_dim)],
        control_period=cfg.control_period,
    )


def check_compatible(contract: Contract, cfg: PolicyConfig) -> None:
    """Raise ValueError listing every way the contract and the model disagree."""
    m = cfg.model
    problems = []
    if contract.state_dim != m.state_dim:
        problems.append(f"contract state_dim {contract.state_dim} != model {m.state_dim}")
    if contract.action_dim != m.action_dim:
        problems.append(f"contract action_dim {contract.action_dim} != model {m.action_dim}")
    model_cams = {c.name: c for c in m.cameras}
    if len(contract.cameras) != len(m.cameras):
        problems.append(f"contract has {len(contract.cameras)} cameras "
                        f"{list(contract.camera_names)}, model {len(m.cameras)} "
                        f"{[c.name for c in m.cameras]}")
    for cam in contract.cameras:
        built = model_cams.get(cam.name)
        if built is None:
            problems.append(f"contract camera '{cam.name}' unknown to the model")
        elif (cam.height, cam.width) != (built.height, built.width):
            problems.append(f"camera '{cam.name}': contract {cam.height}x{cam.width} (HxW), "
                            f"model {built.height}x{built.width}")
    missing = set(model_cams) - set(contract.camera_names)
    if missing:
        problems.append(f"model cameras {sorted(missing)} missing from the contract")
    if problems:
        raise ValueError("checkpoint and contract disagree: " + "; ".join(problems))
