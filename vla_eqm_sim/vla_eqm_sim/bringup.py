"""The sim bridge set up for the checkpoint being served: ``bringup --with-sim``, launch's
``with_sim:=true`` and ``vla-eqm record``'s defaults.

Defaults must compose: a bridge that publishes only ``corner`` on ``button-press-v3`` leaves the
shipped policy holding on a missing ``gripperPOV`` for a whole episode, and a recording without
that camera cannot be replayed through the checkpoint. So the cameras, the image size and the
task come from the checkpoint's contract and training tasks (``checkpoint_sim_params``) unless
``config/sim_bridge.yaml`` (or the caller) sets them. Lives with the sim package so that
vla_eqm_ros never imports it (bring-up asks for it only when ``with_sim`` is set).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from vla_eqm_ros.nodes.runtime import load_params

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "sim_bridge.yaml"
FALLBACK = {"cameras": ["corner"], "image_size": 96, "task": "button-press-v3",
            "image_transport": "raw"}


def bridge_image_size(contract: Any) -> int | None:
    """The square side the bridge must render for the contract's cameras, or None when they are
    not all one square size (the bridge renders every camera at one ``image_size``)."""
    sizes = {(c.height, c.width) for c in contract.cameras}
    if len(sizes) != 1:
        return None
    height, width = next(iter(sizes))
    return height if height == width else None


def bridge_image_transport(contract: Any) -> str | None:
    """The one transport (raw | compressed) the contract's cameras read, or None when mixed."""
    transports = {c.transport for c in contract.cameras}
    return next(iter(transports)) if len(transports) == 1 else None


def contract_bridge_params(contract: Any) -> dict[str, Any]:
    """The bridge parameters a contract's cameras need (cameras, image_size, image_transport):
    one place for eval-sim, the demo and bring-up. ValueError says why a contract cannot be
    served by the bridge (it renders every camera square, at one size, on one transport)."""
    size = bridge_image_size(contract)
    if size is None:
        sizes = sorted({(c.height, c.width) for c in contract.cameras})
        raise ValueError(f"the sim bridge renders square cameras of one size; the contract asks "
                         f"for {sizes}")
    transport = bridge_image_transport(contract)
    if transport is None:
        raise ValueError("the sim bridge publishes every camera on one transport; the contract "
                         "mixes raw and compressed")
    return {"cameras": list(contract.camera_names), "image_size": size,
            "image_transport": transport}


def checkpoint_sim_params(checkpoint: str | Path | None = None) -> dict[str, Any]:
    """cameras, image_size, image_transport and task that the checkpoint (None: the shipped
    default) needs.

    Falls back to ``FALLBACK`` for what the checkpoint cannot say (no contract, non-square or
    mixed camera sizes, no recorded training tasks), naming nothing it would have to guess.
    """
    from vla_eqm_ros.checkpoint import load_config
    from vla_eqm_ros.compat import resolve_contract
    from vla_eqm_ros.policy import DEFAULT_CHECKPOINT

    try:
        cfg = load_config(Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT)
    except Exception as exc:  # no checkpoint: the bridge's own defaults
        print(f"[sim] checkpoint unreadable ({exc}); using the bridge defaults", file=sys.stderr)
        return dict(FALLBACK)
    contract = resolve_contract(cfg)
    out: dict[str, Any] = dict(FALLBACK)
    try:
        out.update(contract_bridge_params(contract))
    except ValueError as exc:
        print(f"[sim] {exc}; using the bridge defaults for the cameras", file=sys.stderr)
    tasks = list(cfg.provenance.get("dataset_tasks") or [])
    if tasks:
        out["task"] = tasks[0]
    return out


def sim_parameters(checkpoint: str | Path | None = None,
                   config: Path | None = None) -> dict[str, Any]:
    """The bridge's parameters: the YAML's, with what it leaves unset taken from the checkpoint."""
    config = config or DEFAULT_CONFIG
    params = load_params(config, "sim_bridge") if config.is_file() else {}
    return {**checkpoint_sim_params(checkpoint), **params}


def make_sim_node(context: Any, checkpoint: str | Path | None = None,
                  config: Path | None = None) -> Any | None:
    """The bridge for ``checkpoint``; None (with the reason on stderr) if it cannot load."""
    try:
        from rclpy.parameter import Parameter

        from vla_eqm_sim.nodes.sim_bridge import SimBridge
    except ImportError as exc:
        print(f"[bringup] sim bridge unavailable: {exc}", file=sys.stderr)
        return None
    return SimBridge(context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in sim_parameters(checkpoint, config).items()])
