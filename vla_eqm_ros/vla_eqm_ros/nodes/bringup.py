"""Python bring-up: what ``ros2 launch vla_eqm_ros policy.launch.py`` does, without the ROS CLI.

Starts the policy node with ``config/policy.yaml`` (and the sim bridge when asked and importable)
in one process on a MultiThreadedExecutor, and drives configure + activate when autostart is on.
DDS must stay on loopback: bring-up refuses to start unless ROS_AUTOMATIC_DISCOVERY_RANGE is
LOCALHOST (``--allow-network`` lifts that on a real robot network) and sets it when unset.

    bringup [--config PATH] [--checkpoint DIR] [--no-autostart] [--with-sim] [--seconds N]
            [--param name:=value ...]
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # source tree: vla_eqm_ros/
DEFAULT_CONFIG = PACKAGE_ROOT / "config" / "policy.yaml"
SHUTDOWN_WATCHDOG_S = 15.0  # s: longer than any clean shutdown (worker join 5 s, executor 2 s)


def require_loopback(allow_network: bool = False) -> None:
    """Set loopback-only discovery when unset; refuse anything else unless explicitly allowed."""
    current = os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if current != "LOCALHOST" and not allow_network:
        raise SystemExit(f"ROS_AUTOMATIC_DISCOVERY_RANGE={current}: refusing to leave loopback "
                         "(pass --allow-network on a robot network)")


def load_params(path: Path, node_name: str) -> dict[str, Any]:
    """The ``ros__parameters`` of ``node_name`` (or ``/**``) from a ROS 2 parameter YAML."""
    doc = yaml.safe_load(path.read_text()) or {}
    out: dict[str, Any] = {}
    for key in ("/**", node_name, f"/{node_name}"):
        out.update((doc.get(key) or {}).get("ros__parameters") or {})
    return out


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bringup", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="parameter YAML")
    p.add_argument("--checkpoint", default=None, help="checkpoint directory (overrides YAML)")
    p.add_argument("--no-autostart", action="store_true", help="do not configure/activate")
    p.add_argument("--with-sim", action="store_true", help="also start vla_eqm_sim's bridge")
    p.add_argument("--seconds", type=float, default=0.0, help="run this long, 0 = until Ctrl-C")
    p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE")
    p.add_argument("--allow-network", action="store_true", help="allow non-loopback DDS")
    return p


def make_sim_node(context: Any, config: Path | None = None) -> Any | None:
    """vla_eqm_sim's bridge with its own YAML (``config/sim_bridge.yaml``); None if unavailable."""
    try:
        from rclpy.parameter import Parameter

        module = importlib.import_module("vla_eqm_sim.nodes.sim_bridge")
    except ImportError as exc:
        print(f"[bringup] sim bridge unavailable: {exc}", file=sys.stderr)
        return None
    config = config or Path(module.__file__).resolve().parents[2] / "config" / "sim_bridge.yaml"
    params = load_params(config, "sim_bridge") if config.is_file() else {}
    return module.SimBridge(context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])


def run_nodes(argv: list[str] | None, autostart: bool | None = True) -> int:
    """Start, optionally autostart, spin; returns a process exit code."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from vla_eqm_ros.nodes import parameters
    from vla_eqm_ros.nodes.policy_node import PolicyNode

    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args = argv[argv.index("--ros-args"):] if "--ros-args" in argv else []
    own = argv[: len(argv) - len(ros_args)]
    opts = build_parser().parse_args(own)
    require_loopback(opts.allow_network)
    params = load_params(opts.config, "policy_node") if opts.config.is_file() else {}
    if autostart is None:
        autostart = bool(params.pop("autostart", False)) and not opts.no_autostart
    else:
        autostart = bool(params.pop("autostart", autostart)) and not opts.no_autostart
    with_sim = bool(params.pop("with_sim", False)) or opts.with_sim
    for item in opts.param:
        name, _, value = item.partition(":=")
        params[name] = _parse_value(value)
    params = {k: parameters.coerce(k, v) for k, v in params.items()}
    if opts.checkpoint:
        params["checkpoint"] = opts.checkpoint
    context = Context()
    rclpy.init(args=["bringup", *ros_args], context=context)
    node = PolicyNode(context=context,
                      parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    nodes = [node]
    if with_sim:
        sim = make_sim_node(context)
        if sim is not None:
            nodes.append(sim)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    for n in nodes:
        executor.add_node(n)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    code = 0
    try:
        if autostart:
            code = autostart_node(node)
        deadline = time.monotonic() + opts.seconds if opts.seconds > 0 else None
        while context.ok() and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # Ctrl-C must end the process. Should the shutdown below ever block (a callback that never
        # returns keeps the executor's thread pool from joining: seen once in CI, not reproduced),
        # every thread's stack goes to stderr and the process exits 1 instead of hanging.
        faulthandler.dump_traceback_later(SHUTDOWN_WATCHDOG_S, exit=True)
        shut_down(context, executor, nodes, policy_node=node)
        faulthandler.cancel_dump_traceback_later()
    return code


def shut_down(context: Any, executor: Any, nodes: list[Any], policy_node: Any = None) -> None:
    """Tear down an in-process bring-up (this one, the demo, live replay) in the one safe order.

    The policy node deactivates first, while the executor still runs, so its hold is the last
    command; then the executor stops, the nodes are destroyed in the given order (the policy
    node joins its solver thread there) and the context shuts down.
    """
    import rclpy

    if policy_node is not None and policy_node._state_machine.current_state[1] == "active":
        policy_node.trigger_deactivate()
    if executor is not None:
        executor.shutdown(timeout_sec=2.0)
    for n in nodes:
        n.destroy_node()
    if context.ok():
        rclpy.shutdown(context=context)


def autostart_node(node: Any) -> int:
    """configure + activate; a failure is logged (with traceback by the node) and returned."""
    from rclpy.lifecycle import TransitionCallbackReturn

    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error("autostart: configure failed; node stays unconfigured")
        return 1
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error("autostart: activate failed")
        return 1
    node.get_logger().info("autostart: active")
    return 0


def exit_process(code: int) -> None:
    """Exit with ``code``; the watchdog stays armed through interpreter teardown (atexit joins
    the executor's pool threads), so a stuck thread still ends in stack traces, not a hang."""
    faulthandler.dump_traceback_later(SHUTDOWN_WATCHDOG_S, exit=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console script ``bringup``: autostart follows the YAML ``autostart`` (default true)."""
    exit_process(run_nodes(argv, autostart=True))
