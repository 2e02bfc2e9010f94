"""Live retuning through a separate node's parameter client, the way rqt_reconfigure does it."""

from __future__ import annotations

import math

import pytest
from policy_node_harness import Harness, build_checkpoint
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient

SUCCESS = TransitionCallbackReturn.SUCCESS


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_checkpoint(tmp_path_factory.mktemp("ckpt") / "debug_eqm")


@pytest.fixture(scope="module")
def running(checkpoint):
    """One active node for the module: start-up (MiniLM load, warm-up) dominates test time."""

    h = Harness({"checkpoint": str(checkpoint), "execute_steps": 1})
    assert h.node.trigger_configure() == SUCCESS
    h.publish_goal("press the button")
    h.start_stream()
    assert h.node.trigger_activate() == SUCCESS
    assert h.wait_for(lambda: len(h.statuses) >= 1)
    yield h
    h.close()


def set_remote(h: Harness, **values):
    client = AsyncParameterClient(h.io, "policy_node")
    assert client.wait_for_services(timeout_sec=20.0)
    future = client.set_parameters([Parameter(k, value=v) for k, v in values.items()])
    assert h.wait_for(future.done, timeout=20.0)
    return future.result().results


def test_tau_and_k_max_set_by_a_remote_client_show_up_in_the_next_decoder_status(running):
    results = set_remote(running, tau=0.5, k_max=7)
    assert all(r.successful for r in results)
    assert running.wait_for(
        lambda: any(s.tau == 0.5 and s.k_max == 7 for s in running.statuses), timeout=5)
    later = [s for s in running.statuses if s.k_max == 7]
    assert all(s.iterations <= 7 for s in later)
    assert running.node.get_parameter("log10_tau").value == pytest.approx(math.log10(0.5))


def test_a_tau_per_goal_set_live_applies_to_its_goal_only(running):
    results = set_remote(running, tau=0.05, tau_by_goal=["0.9=press the button",
                                                         "0.01=open the drawer"])
    assert all(r.successful for r in results)
    # the node's goal is "press the button": its own entry wins over the global tau
    assert running.wait_for(lambda: any(s.tau == pytest.approx(0.9) for s in running.statuses))
    bad = set_remote(running, tau_by_goal=["fast=press the button"])
    assert not bad[0].successful and "TAU=GOAL" in bad[0].reason
    assert all(r.successful for r in set_remote(running, tau_by_goal=["0.3=someone else"]))
    assert running.wait_for(lambda: running.statuses[-1].tau == pytest.approx(0.05))


def test_the_log_tau_slider_moves_tau_with_it(running):
    assert all(r.successful for r in set_remote(running, log10_tau=-2.0))
    assert running.node.get_parameter("tau").value == pytest.approx(0.01)
    assert running.wait_for(lambda: any(s.tau == pytest.approx(0.01) for s in running.statuses))


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"tau": 5.0}, "out of range"),
        ({"k_max": 0}, "out of range"),
        ({"momentum": 0.999}, "out of range"),
        ({"warm_start": "sideways"}, "warm_start must be one of"),
        ({"execution": "eventually"}, "execution must be one of"),
        ({"execute_steps": 9}, "exceeds the chunk horizon H=8"),
        ({"decoder": "fm"}, "needs a checkpoint trained for it"),
        ({"action_low": [-2.0, -1.0, -1.0, -1.0]}, "may only narrow"),
        ({"action_high": [1.0, 1.0]}, "need 4 values"),
        ({"checkpoint": "/elsewhere"}, "read-only"),
        ({"trigger": "observation"}, "read-only"),
    ],
)
def test_bad_values_are_refused_with_a_reason_and_nothing_changes(running, values, reason):
    before = {k: running.node.get_parameter(k).value if k not in ("action_low", "action_high")
              else None for k in values}
    results = set_remote(running, **values)
    assert not results[0].successful
    assert reason in results[0].reason
    for k, v in before.items():
        if v is not None:
            assert running.node.get_parameter(k).value == v


def test_narrower_action_limits_clamp_the_published_commands(running):
    assert all(r.successful for r in set_remote(
        running, action_low=[-0.01] * 4, action_high=[0.01] * 4))
    import time

    time.sleep(0.3)
    t = time.monotonic()
    assert running.wait_for(lambda: len(running.commands_since(t)) >= 5)
    for msg in running.commands_since(t):
        assert all(-0.01 <= v <= 0.01 for v in msg.data)


def test_the_parameter_doc_lists_every_declared_parameter_with_its_default_and_range() -> None:
    """docs/policy_node.md embeds the generated table: a new or changed parameter fails here
    until the doc is regenerated (``python -c "from vla_eqm_ros.nodes.parameters import
    markdown_table; print(markdown_table())"``)."""
    from pathlib import Path

    from vla_eqm_ros.nodes import parameters

    doc = (Path(__file__).resolve().parents[2] / "docs" / "policy_node.md").read_text()
    table = parameters.markdown_table()
    assert table in doc
    for spec in parameters.SPECS:
        assert f"| `{spec.name}` |" in table
    assert "| `tau` | 0.1 (checkpoint's when unset) | [0, 2] | yes |" in table


def test_an_integer_for_a_floating_point_parameter_is_taken_as_that_float() -> None:
    # rclpy refuses an INTEGER override of a DOUBLE parameter: `control_rate_hz: 20` in YAML or
    # `--param control_rate_hz:=20` would otherwise stop the node from starting.
    from vla_eqm_ros.nodes.parameters import coerce

    assert coerce("control_rate_hz", 20) == 20.0 and type(coerce("control_rate_hz", 20)) is float
    assert type(coerce("k_max", 20)) is int  # integer parameters stay integers
    assert coerce("publish_debug", True) is True  # bool is not an integer here
    assert coerce("tau", "x") == "x"  # a real type error still reaches rclpy's check
    assert coerce("no_such_parameter", 3) == 3
