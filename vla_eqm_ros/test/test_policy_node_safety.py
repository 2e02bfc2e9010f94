"""Safety of the running policy node over real DDS: bad input, stale input, poisoned output.

Every test drives a real node (debug checkpoint, random weights) from a separate I/O node on
loopback and judges only what leaves the node: commands, /rosout log lines and /diagnostics.
Timing bounds allow 50 ms on top of the contract for scheduling on a shared 2-core machine.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from policy_node_harness import Harness, build_checkpoint, image, is_hold, joints, unique_name

PERIOD = 0.05  # s, the debug contract's control period
MAX_AGE = 0.3  # s, max_age of camera and joint state in the test contract
SCHEDULING_SLACK = 0.05  # s


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_checkpoint(tmp_path_factory.mktemp("ckpt") / "debug_eqm")


@pytest.fixture
def harness(checkpoint):
    h = Harness({"checkpoint": str(checkpoint), "execute_steps": 2}, unique_name())
    yield h
    h.close()


def _bad_images(stamp):
    wrong_encoding = image(stamp, encoding="yuv422")
    wrong_size = image(stamp, h=16, w=16)
    wrong_step = image(stamp)
    wrong_step.step = 10
    truncated = image(stamp)
    truncated.data = bytes(truncated.data)[:100]
    return {"unsupported encoding": wrong_encoding, "size 16x16": wrong_size,
            "step 10 <": wrong_step, "truncated data": truncated}


def _bad_joint_states(stamp):
    return {"missing joints": joints(stamp, names=["j0", "j1"], values=[0.0, 0.0]),
            "non-finite position": joints(stamp, values=[0.0, math.nan, 0.0, 0.0])}


def test_malformed_images_and_joint_states_are_rejected_with_a_logged_reason(harness) -> None:
    harness.activate_with_stream()
    harness.stop_stream()
    t_bad = time.monotonic()
    deadline = t_bad + 1.0
    while time.monotonic() < deadline:  # only bad input for a second: the good one goes stale
        stamp = harness.now()
        for msg in _bad_images(stamp).values():
            harness.image_pub.publish(msg)
        for msg in _bad_joint_states(stamp).values():
            harness.joint_pub.publish(msg)
        time.sleep(PERIOD)
    for reason in [*_bad_images(harness.now()), *_bad_joint_states(harness.now())]:
        assert harness.wait_for(lambda r=reason: harness.logged(r), timeout=5), \
            f"no log line saying {reason!r}; got {harness.logs}"
    assert harness.wait_for(lambda: "rejected[/camera/corner/image_raw]"
                            in harness.diagnostics_values(), timeout=3)
    held = harness.commands_since(t_bad + MAX_AGE + 2 * PERIOD + SCHEDULING_SLACK)
    assert held and all(is_hold(m) for m in held), "bad input alone must leave the node holding"
    t_good = time.monotonic()
    harness.start_stream()
    assert harness.wait_for(lambda: any(not is_hold(m) for m in harness.commands_since(t_good)))


def test_stale_inputs_hold_within_two_control_periods_and_resume_when_they_return(
        harness) -> None:
    harness.activate_with_stream()
    harness.stop_stream()  # the last inputs were published just before this returns
    t_stop = time.monotonic()
    assert harness.wait_for(lambda: any(is_hold(m) for m in harness.commands_since(t_stop)),
                            timeout=3)
    with harness.lock:
        t_hold = next(ts for ts, m in harness.commands if ts >= t_stop and is_hold(m))
    assert t_hold - t_stop <= MAX_AGE + 2 * PERIOD + SCHEDULING_SLACK
    assert harness.logged("holding position: stale")
    time.sleep(0.3)
    t_still = time.monotonic()
    assert harness.wait_for(lambda: len(harness.commands_since(t_still)) >= 3)
    assert all(is_hold(m) for m in harness.commands_since(t_still)), "kept holding while stale"
    t_back = time.monotonic()
    harness.start_stream()
    assert harness.wait_for(lambda: any(not is_hold(m) for m in harness.commands_since(t_back)))


def _poison(harness: Harness, value: float) -> None:
    """Replace the loaded policy's decode by one whose chunk is ``value`` everywhere."""
    policy = harness.node.policy
    real = policy.predict_action_chunk

    def poisoned(obs, steps_executed=None):
        chunk, rec = real(obs, steps_executed=steps_executed)
        return np.full_like(chunk, value), rec

    policy.predict_action_chunk = poisoned


@pytest.mark.parametrize(("value", "logged"), [(math.nan, "non-finite action"),
                                               (math.inf, "non-finite action"),
                                               (5.0, "outside limits")])
def test_nan_inf_and_out_of_limit_actions_are_never_published(harness, value, logged) -> None:
    harness.activate_with_stream()
    _poison(harness, value)
    t = time.monotonic()
    assert harness.wait_for(lambda: len(harness.commands_since(t)) >= 10)
    assert harness.wait_for(lambda: harness.logged(logged), timeout=5)
    time.sleep(0.2)  # let commands produced by the unpoisoned queue drain
    late = harness.commands_since(t + 0.2)
    assert late
    for msg in late:
        data = np.asarray(msg.data)
        assert np.all(np.isfinite(data)) and np.all(np.abs(data) <= 1.0)
    if not math.isfinite(value):
        assert all(is_hold(m) for m in late)
    else:
        assert all(list(m.data) == [1.0, 1.0, 1.0, 1.0] for m in late)
    assert harness.wait_for(
        lambda: any(k.startswith("safety[") for k in harness.diagnostics_values()), timeout=3)
