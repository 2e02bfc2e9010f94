"""Python bring-up: what ``ros2 launch vla_eqm_ros policy.launch.py`` does, without the ROS CLI.

Starts the policy node with ``config/policy.yaml`` (and the sim bridge when asked and importable)
in one process on the executor ``config/policy.yaml`` names (``executor``, single-threaded by
default: ``runtime.make_executor``), and drives configure + activate when autostart is on.
DDS must stay on loopback: bring-up refuses to start unless ROS_AUTOMATIC_DISCOVERY_RANGE is
LOCALHOST (``--allow-network`` lifts that on a real robot network) and sets it when unset.

    bringup [--config PATH] [--checkpoint DIR] [--no-autostart] [--with-sim] [--seconds N]
            [--executor single_threaded|multi_threaded] [--param name:=value ...]
"""

from __future__ import annotations

import argparse
import faulthandler
import sys
from pathlib import Path
from typing import Any

from vla_eqm_ros.nodes import deployment, runtime
from vla_eqm_ros.nodes.runtime import load_params

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # source tree: vla_eqm_ros/
DEFAULT_CONFIG = PACKAGE_ROOT / "config" / "policy.yaml"
SHUTDOWN_WATCHDOG_S = 15.0  # s: longer than any clean shutdown (worker join 5 s, executor 2 s)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bringup", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="parameter YAML")
    p.add_argument("--checkpoint", default=None, help="checkpoint directory (overrides YAML)")
    p.add_argument("--no-autostart", action="store_true", help="do not configure/activate")
    p.add_argument("--with-sim", action="store_true", help="also start vla_eqm_sim's bridge")
    p.add_argument("--seconds", type=float, default=0.0, help="run this long, 0 = until Ctrl-C")
    p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE")
    p.add_argument("--allow-network", action="store_true", help="allow non-loopback DDS")
    p.add_argument("--executor", choices=deployment.EXECUTORS, default=None,
                   help="executor for the process's nodes (overrides the YAML's)")
    return p


def run_nodes(argv: list[str] | None, autostart: bool | None = True) -> int:
    """Start, optionally autostart, spin under supervision; returns a process exit code.

    Exit codes: 0 after Ctrl-C or ``--seconds``; 1 when autostart failed; ``EXECUTOR_DIED`` (70)
    when the executor stopped under the process (the node held first), so that launch's
    ``respawn`` or systemd restarts a node that would otherwise stay up deaf.
    """
    from rclpy.executors import ExternalShutdownException
    from rclpy.parameter import Parameter

    from vla_eqm_ros.nodes import parameters
    from vla_eqm_ros.nodes.policy_node import PolicyNode

    runtime.ensure_ament_prefix()
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args = argv[argv.index("--ros-args"):] if "--ros-args" in argv else []
    own = argv[: len(argv) - len(ros_args)]
    opts = build_parser().parse_args(own)
    params = load_params(opts.config, "policy_node") if opts.config.is_file() else {}
    settings = deployment.split_settings(params)
    autostart = (settings.autostart if autostart is None else autostart) and not opts.no_autostart
    with_sim = settings.with_sim or opts.with_sim
    params.update(runtime.parse_overrides(opts.param))
    params = {k: parameters.coerce(k, v) for k, v in params.items()}
    if opts.checkpoint:
        params["checkpoint"] = opts.checkpoint

    def make_nodes(context: Any) -> list[Any]:
        nodes: list[Any] = [PolicyNode(context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in params.items()])]
        if with_sim:
            from vla_eqm_sim.bringup import make_sim_node  # optional package: import on demand

            sim = make_sim_node(context, params.get("checkpoint") or None)
            if sim is not None:
                nodes.append(sim)
        return nodes

    run = runtime.InProcess(make_nodes, threads=4, policy_node=lambda nodes: nodes[0],
                            init_args=["bringup", *ros_args], allow_network=opts.allow_network,
                            executor=opts.executor or settings.executor)
    return serve(run, autostart, opts.seconds, (ExternalShutdownException,))


def serve(run: runtime.InProcess, autostart: bool, seconds: float,
          interrupts: tuple[type[BaseException], ...] = ()) -> int:
    """Bring ``run`` up, autostart its policy node, wait; the exit code says how it ended."""
    code = 0
    try:
        with run:
            assert run.spin is not None
            try:
                if autostart:
                    code = autostart_node(run.policy_node)
                run.spin.wait(seconds)
            except BaseException as exc:
                if not isinstance(exc, (KeyboardInterrupt, *interrupts)):
                    raise
            finally:
                # Ctrl-C must end the process. Should the shutdown ever block (a callback that
                # never returns keeps the executor's thread pool from joining: seen once in CI),
                # every thread's stack goes to stderr and the process exits 1 instead of hanging.
                faulthandler.dump_traceback_later(SHUTDOWN_WATCHDOG_S, exit=True)
            if run.spin.died:
                code = runtime.EXECUTOR_DIED
    finally:
        faulthandler.cancel_dump_traceback_later()
    return code


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
    exit_process(run_nodes(argv, autostart=None))

