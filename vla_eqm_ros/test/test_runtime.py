"""The node-agnostic runtime: a dead executor is noticed, held and reported, never left deaf.

The executor is killed from the test the way any unguarded callback kills it: a timer callback
that raises. rclpy's ``spin()`` then ends; without supervision the process would stay up with no
callback ever running again and a policy command as the last thing on the wire.
"""

from __future__ import annotations

import threading
import time

import pytest
from policy_node_harness import Harness, build_checkpoint, is_hold
from rclpy.parameter import Parameter

from vla_eqm_ros.nodes import bringup, runtime
from vla_eqm_ros.nodes.policy_node import PolicyNode


class _Killer:
    """A node whose timer raises once ``armed`` is set: a callback bug that escapes rclpy."""

    def __init__(self, context) -> None:
        import rclpy

        self.armed = threading.Event()
        self.node = rclpy.create_node("executor_killer", context=context)
        self.node.create_timer(0.05, self._tick)

    def _tick(self) -> None:
        if self.armed.is_set():
            raise RuntimeError("executor killed by test")


def test_a_dead_executor_holds_logs_the_cause_and_exits_non_zero(tmp_path) -> None:
    ckpt = build_checkpoint(tmp_path / "ckpt")
    io = Harness({"checkpoint": str(ckpt)}, node_name="unused_policy_node")  # the robot
    killer: list[_Killer] = []

    def make_nodes(context):
        killer.append(_Killer(context))
        return [PolicyNode(context=context, parameter_overrides=[
            Parameter("checkpoint", value=str(ckpt))]), killer[0].node]

    def arm_when_commanding() -> None:
        ok = io.wait_for(lambda: sum(not is_hold(m) for m in io.commands_since(0.0)) >= 5, 60)
        if ok:
            killer[0].armed.set()

    try:
        io.publish_goal("press the button")
        io.start_stream()
        threading.Thread(target=arm_when_commanding, daemon=True).start()
        run = runtime.InProcess(make_nodes, policy_node=lambda nodes: nodes[0])
        t0 = time.monotonic()
        code = bringup.serve(run, autostart=True, seconds=90.0)
        assert time.monotonic() - t0 < 60, "serve returned on the death, not at its deadline"
        assert code == runtime.EXECUTOR_DIED
        assert run.spin is not None and run.spin.died
        assert "executor killed by test" in run.spin.error
        assert "Traceback" in run.spin.error
        time.sleep(0.5)
        commands = io.commands_since(0.0)
        assert any(not is_hold(m) for m in commands), "the policy was commanding"
        assert is_hold(commands[-1]), "the last command on the wire is the hold"
    finally:
        io.close()


def test_a_requested_shutdown_is_not_reported_as_a_death() -> None:
    import rclpy

    def make_nodes(context):
        return [rclpy.create_node("quiet_node", context=context)]

    with runtime.InProcess(make_nodes) as run:
        assert run.spin is not None
        run.spin.wait(0.3)
    assert not run.spin.died


def test_parameter_overrides_parse_like_ros_args_and_reject_malformed_items() -> None:
    assert runtime.parse_overrides(["tau:=0.05", "warm_start:=none", "action_low:=[-1, -1]"]) == {
        "tau": 0.05, "warm_start": "none", "action_low": [-1, -1]}
    with pytest.raises(SystemExit, match="expected NAME:=VALUE"):
        runtime.parse_overrides(["tau=0.05"])


def test_loopback_is_required_unless_a_robot_network_is_named(monkeypatch) -> None:
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "SUBNET")
    with pytest.raises(SystemExit, match="refusing to leave loopback"):
        runtime.require_loopback()
    runtime.require_loopback(allow_network=True)  # named explicitly: allowed


def test_an_executor_that_simply_returns_while_running_is_a_death_too() -> None:
    class _Returns:
        def spin(self) -> None:
            return

    class _Up:
        def ok(self) -> bool:
            return True

    held: list[str] = []
    spin = runtime.SupervisedSpin(_Returns(), _Up(), on_death=held.append).start()
    spin.wait(5.0)
    assert spin.died and "returned while the process was still running" in spin.error
    assert held == [spin.error], "the hold hook ran with the cause"


def test_the_executor_comes_from_the_yaml_or_the_flag_and_a_bad_name_is_refused() -> None:
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

    from vla_eqm_ros.nodes import deployment

    params = {"executor": "multi_threaded", "tau": 0.1}
    assert deployment.split_settings(params).executor == "multi_threaded"
    assert params == {"tau": 0.1}  # the node never sees it
    assert deployment.split_settings({}).executor == "single_threaded"  # the default
    with pytest.raises(ValueError, match="executor: expected one of"):
        deployment.split_settings({"executor": "events"})
    assert bringup.build_parser().parse_args(["--executor", "multi_threaded"]).executor \
        == "multi_threaded"
    kinds = {"single_threaded": SingleThreadedExecutor, "multi_threaded": MultiThreadedExecutor}
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        for name, cls in kinds.items():
            executor = runtime.make_executor(name, context)
            assert isinstance(executor, cls)
            executor.shutdown()
        with pytest.raises(ValueError, match="executor"):
            runtime.make_executor("events", context)
    finally:
        rclpy.shutdown(context=context)
