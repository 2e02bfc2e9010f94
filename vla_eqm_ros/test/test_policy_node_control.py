"""Control behaviour of the running policy node over real DDS: execution modes, warm-start resets,
the enable service, /diagnostics and the observation trigger."""

from __future__ import annotations

import time

import numpy as np
import pytest
from policy_node_harness import Harness, build_checkpoint, is_hold, unique_name
from rclpy.lifecycle import TransitionCallbackReturn

PERIOD = 0.05  # s
SUCCESS = TransitionCallbackReturn.SUCCESS


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_checkpoint(tmp_path_factory.mktemp("ckpt") / "debug_eqm")


@pytest.fixture
def make_harness(checkpoint):
    made: list[Harness] = []

    def make(**params) -> Harness:
        made.append(Harness({"checkpoint": str(checkpoint), **params}, unique_name()))
        return made[-1]

    yield make
    for h in made:
        h.close()


def _slow_down(h: Harness, seconds_per_evaluation: float) -> None:
    """A deliberately slow field: every evaluation sleeps first (the GIL is released)."""
    model = h.node.policy.model
    real = model.field

    def slow(*args, **kwargs):
        time.sleep(seconds_per_evaluation)
        return real(*args, **kwargs)

    model.field = slow


def test_async_mode_keeps_publishing_at_the_control_rate_while_a_slow_solve_runs(
        tmp_path) -> None:
    # H = 32 steps (1.6 s): a solve of ~10 periods still leaves rows to execute when it lands
    h = Harness({"checkpoint": str(build_checkpoint(tmp_path / "long", horizon=32)),
                 "execution": "async", "tau": 0.0, "k_max": 50, "execute_steps": 4},
                unique_name())
    try:
        assert h.node.trigger_configure() == SUCCESS
        _slow_down(h, 0.01)  # >= 0.5 s per solve
        h.publish_goal("press the button")
        h.start_stream()
        assert h.node.trigger_activate() == SUCCESS
        assert h.wait_for(lambda: len(h.statuses) >= 3, timeout=20)
        t_end = time.monotonic()
        assert all(s.solve_ms > 10 * PERIOD * 1e3 for s in h.statuses)
        with h.lock:
            times = np.array([ts for ts, _ in h.commands])
            policy = [m for ts, m in h.commands if not is_hold(m)]
        times = times[times >= times[0] + 0.5]  # after start-up
        gaps = np.diff(times)
        assert t_end - times[0] > 2 * h.statuses[-1].solve_ms / 1e3, "the window spans solves"
        # A synchronous loop goes silent for a whole solve (>= 0.5 s); async publishes during
        # every solve. The bound leaves room for the executor hitches measured on the 2-core CI
        # machine (up to 0.41 s under GIL contention; issue #7 tracks the node's live throughput).
        shortest_solve = min(s.solve_ms for s in h.statuses) / 1e3
        assert gaps.max() < 0.9 * shortest_solve, \
            f"the loop stalled {gaps.max():.3f} s during a {shortest_solve:.2f} s solve"
        assert np.median(gaps) < 1.5 * PERIOD, "commands keep the control rate in between"
        assert policy, "solved chunks were installed and executed, not only holds"
    finally:
        h.close()


def _warm_flags_after(h: Harness, t_call: float, count: int = 3) -> list[bool]:
    """warm_start_used of the first ``count`` statuses received after ``t_call``."""
    with h.lock:
        start = len([s for s in h.status_times if s < t_call])
    assert h.wait_for(lambda: len(h.statuses) >= start + count)
    with h.lock:
        return [s.warm_start_used for s in h.statuses[start:start + count]]


def test_a_new_goal_and_the_reset_service_each_reset_the_warm_start(make_harness) -> None:
    h = make_harness(execute_steps=1, warm_start="shifted")
    h.activate_with_stream()
    assert h.wait_for(lambda: len(h.statuses) >= 4)
    assert all(s.warm_start_used for s in h.statuses[-3:]), "steady state reuses the last chunk"
    t = time.monotonic()
    response = h.reset()
    assert response.success
    flags = _warm_flags_after(h, t, count=6)
    assert False in flags and flags[-1], f"reset: {flags}"
    t = time.monotonic()
    h.publish_goal("open the drawer")
    assert h.wait_for(lambda: h.logged("new goal: 'open the drawer'"))
    flags = _warm_flags_after(h, t, count=6)
    assert False in flags and flags[-1], f"new goal: {flags}"


def test_the_enable_service_gates_commands(make_harness) -> None:
    h = make_harness(execute_steps=2)
    h.activate_with_stream()
    assert h.enable(False).success
    time.sleep(0.2)
    last = h.commands_since(0.0)[-1]
    assert is_hold(last), "disabling sends a hold"
    t = time.monotonic()
    time.sleep(0.5)
    assert h.commands_since(t) == [], "a disabled node commands nothing"
    assert h.enable(True).success
    assert h.wait_for(lambda: any(not is_hold(m) for m in h.commands_since(t)))


def test_diagnostics_carry_rate_latency_solver_depth_input_ages_and_drops(make_harness) -> None:
    h = make_harness(execute_steps=1)
    h.activate_with_stream()
    assert h.wait_for(lambda: int(h.diagnostics_values().get("solves", "0")) >= 5, timeout=10)
    values = h.diagnostics_values()
    assert 5.0 < float(values["loop_rate_hz"]) < 40.0
    for key in ("cycle_ms_p50", "cycle_ms_p99", "sensor_to_command_ms_p50",
                "sensor_to_command_ms_p99", "iterations_p50", "residual_last"):
        assert np.isfinite(float(values[key])), key
    assert float(values["sensor_to_command_ms_p50"]) > 0.0
    assert 0.0 <= float(values["age_s[corner]"]) < 0.3
    assert 0.0 <= float(values["age_s[/joint_states]"]) < 0.3
    assert int(values["warm_start_used"]) >= 1
    assert values["warm_start_used_last"] in ("true", "false")
    assert int(values["dropped_cycles"]) >= 0
    for key in ("solve_ms_p50", "solve_ms_p99"):
        assert float(values[key]) > 0.0, key
    status = h.diagnostics[-1].status[0]
    assert status.name == f"{h.name}: policy loop" and "active" in status.message


def test_the_observation_trigger_answers_each_observation_with_exactly_one_command(
        make_harness) -> None:
    # Lockstep, as with the sim bridge: the next observation goes out once the previous one was
    # answered, so the count tests the trigger rule and not the machine's speed; input ages of
    # 2 s keep a slow cycle on a loaded CI machine from reading as stale input.
    h = make_harness(trigger="observation", execute_steps=3, camera_max_age=2.0,
                     state_max_age=2.0)
    assert h.node.trigger_configure() == SUCCESS
    h.publish_goal("press the button")
    assert h.node.trigger_activate() == SUCCESS
    assert h.wait_for(lambda: any(is_hold(m) for m in h.commands_since(0.0)))  # no inputs yet
    t0 = time.monotonic()
    h.publish_inputs()
    assert h.wait_for(lambda: any(not is_hold(m) for m in h.commands_since(t0)))
    time.sleep(0.02)
    t = time.monotonic()
    for i in range(12):
        h.publish_inputs()
        assert h.wait_for(lambda n=i + 1: len(h.commands_since(t)) >= n, timeout=10), \
            f"observation {i} got no command"
    t_end = time.monotonic()
    time.sleep(0.3)  # a second command per observation would arrive now
    window = [m for m in h.commands_since(t) if not is_hold(m)]
    assert len(h.commands_since(t)) == 12 and len(window) == 12, \
        f"{len(h.commands_since(t))} commands ({12 - len(window)} holds) for 12 observations"
    assert h.wait_for(lambda: any(is_hold(m) for m in h.commands_since(t_end)), timeout=6), \
        "stale inputs: the watchdog holds"
    assert h.wait_for(lambda: "dropped_cycles" in h.diagnostics_values(), timeout=3)
    assert h.diagnostics_values()["dropped_cycles"] == "0"


# --- the trigger rule alone (nodes/trigger.py is ROS-free) -----------------------------------

def test_a_frame_waits_for_the_joint_state_of_its_own_step() -> None:
    from vla_eqm_ros.nodes.trigger import ObservationTrigger

    trig = ObservationTrigger("corner", ["/joint_states"], max_wait=0.05)
    trig.arrived("/joint_states", 1.000, received=1.000)
    trig.arrived("corner", 1.0125, received=1.0125)  # image of the next step first
    assert not trig.ready(now=1.0130), "paired with the previous step's state otherwise"
    trig.arrived("/joint_states", 1.0125, received=1.0131)
    assert trig.ready(now=1.0131)
    assert trig.consume() == 1
    assert not trig.ready(now=1.0132), "one cycle per frame"


def test_a_frame_whose_partner_never_catches_up_runs_after_max_wait() -> None:
    from vla_eqm_ros.nodes.trigger import ObservationTrigger

    trig = ObservationTrigger("corner", ["/joint_states"], max_wait=0.05)
    trig.arrived("/joint_states", 0.999, received=1.000)
    trig.arrived("corner", 1.000, received=1.001)
    assert not trig.ready(now=1.02)
    assert trig.ready(now=1.06)


def test_a_frame_waits_a_quarter_period_for_its_state_not_only_the_stamp_skew() -> None:
    """The node's wait: with the Meta-World contract's 1 ms skew as the wait, a 640x480 JPEG
    frame (two 1.5 ms decodes before its joint state is taken) ran without its state and the
    cycle acted on the previous frame."""
    from vla_eqm_ros.nodes.policy_node import trigger_max_wait
    from vla_eqm_ros.nodes.trigger import ObservationTrigger

    assert trigger_max_wait(0.001, 20.0) == pytest.approx(0.0125)
    assert trigger_max_wait(0.05, 20.0) == pytest.approx(0.05)  # never below the skew
    trig = ObservationTrigger("corner", ["gripperPOV", "/joint_states"],
                              max_wait=trigger_max_wait(0.001, 20.0))
    trig.arrived("/joint_states", 1.00, received=1.001)
    trig.arrived("corner", 1.05, received=1.0515)
    trig.arrived("gripperPOV", 1.05, received=1.0545)  # 3 ms later: decoding the first
    assert not trig.ready(now=1.0545), "ran without the frame's joint state"
    trig.arrived("/joint_states", 1.05, received=1.0550)
    assert trig.ready(now=1.0550)


def test_frames_coalesced_during_a_cycle_count_as_dropped() -> None:
    from vla_eqm_ros.nodes.trigger import ObservationTrigger

    trig = ObservationTrigger("corner", [], max_wait=0.05)
    for i in range(3):
        trig.arrived("corner", 1.0 + 0.05 * i, received=1.0 + 0.05 * i)
    assert trig.ready(now=1.1) and trig.consume() == 3  # 2 dropped, the newest is used
    trig.arrived("corner", 0.5, received=1.2)  # out of order: not new
    assert not trig.ready(now=1.2)


def test_after_an_episode_reset_the_first_frame_triggers_even_at_an_answered_stamp() -> None:
    # A lockstep simulator reset does not advance sim time: the new episode's first frame carries
    # the stamp of the previous episode's last (already answered) frame.
    from vla_eqm_ros.nodes.trigger import ObservationTrigger

    trig = ObservationTrigger("corner", ["/joint_states"], max_wait=0.05)
    for name in ("/joint_states", "corner"):
        trig.arrived(name, 2.0, received=2.0)
    assert trig.ready(now=2.0) and trig.consume() == 1
    trig.new_episode()
    assert not trig.ready(now=2.01), "the old episode's frame must not be answered again"
    for name in ("/joint_states", "corner"):
        trig.arrived(name, 2.0, received=2.02)  # the reset frame, same stamp
    assert trig.ready(now=2.02) and trig.consume() == 1
    assert not trig.ready(now=2.03), "one cycle per frame, also after a reset"


def test_the_trigger_reports_the_stamp_and_receipt_of_the_newest_frame() -> None:
    from vla_eqm_ros.nodes.trigger import ObservationTrigger

    trig = ObservationTrigger("corner", ["/joint_states"], max_wait=0.05)
    trig.arrived("corner", 1.00, received=1.004)
    trig.arrived("corner", 1.05, received=1.058)
    trig.arrived("/joint_states", 1.05, received=1.060)  # a partner does not change the frame
    assert trig.latest() == (1.05, 1.058)


def test_transport_and_dispatch_delays_reach_the_diagnostics_summary() -> None:
    from vla_eqm_ros.nodes.diagnostics import LoopStats

    stats = LoopStats(window=10)
    for i in range(20):  # only the last 10 count
        stats.delays(transport_ms=float(i), dispatch_ms=100.0 + i)
    out = stats.summary()
    assert float(out["transport_ms_p50"]) == pytest.approx(14.5)
    assert float(out["dispatch_ms_p99"]) == pytest.approx(118.91)


def test_a_reason_with_changing_numbers_is_one_kind_of_reason() -> None:
    # Keyed on the raw text, "stale: corner (0.231 s > 0.200 s)" was a new reason every cycle
    # and the throttled warning went out at the control rate.
    from vla_eqm_ros.nodes.diagnostics import reason_kind

    a = reason_kind("stale: corner (0.231 s > 0.200 s), /joint_states (1.5e-1 s > 0.1 s)")
    b = reason_kind("stale: corner (30.845 s > 0.200 s), /joint_states (12 s > 0.1 s)")
    assert a == b
    assert reason_kind("stale: corner (0.2 s > 0.1 s)") != reason_kind("missing: corner")
