"""``bringup --with-sim`` / ``with_sim:=true``: the sim bridge next to the policy node.

Lives with the sim package so that vla_eqm_ros never imports it (bring-up asks for it only when
``with_sim`` is set). The bridge reads its own YAML, ``config/sim_bridge.yaml``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from vla_eqm_ros.nodes.runtime import load_params

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "sim_bridge.yaml"


def make_sim_node(context: Any, config: Path | None = None) -> Any | None:
    """The bridge with its YAML parameters; None (with the reason on stderr) if it cannot load."""
    try:
        from rclpy.parameter import Parameter

        from vla_eqm_sim.nodes.sim_bridge import SimBridge
    except ImportError as exc:
        print(f"[bringup] sim bridge unavailable: {exc}", file=sys.stderr)
        return None
    config = config or DEFAULT_CONFIG
    params = load_params(config, "sim_bridge") if config.is_file() else {}
    return SimBridge(context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])
