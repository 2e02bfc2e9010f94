"""A camera driver that floods far above its nominal rate must not collapse input alignment.

The per-input history is a time window sized from the contract (largest maximum age plus the
allowed skew), with a hard cap on frames; a fixed count of frames (the old 32) spanned 32 ms at
1 kHz. Counted, not timed: the share of held cycles under a burst is compared with the same
node's share under the nominal feed, both over real DDS.
"""

from __future__ import annotations

import threading
import time

from policy_node_harness import CONTRACT, Harness, build_checkpoint, image, is_hold, joints

from vla_eqm_ros.contract import Contract
from vla_eqm_ros.decode import ObservationAssembler

BURST_CONTRACT = {**CONTRACT, "cameras": [{**CONTRACT["cameras"][0], "max_age": 0.15}],
                  "state": [{**CONTRACT["state"][0], "max_age": 0.15}],
                  "alignment": {"mode": "asof", "max_skew": 0.05}}


def _feed(h: Harness, camera_hz: float, joint_hz: float, seconds: float) -> float:
    """Publish for ``seconds``; returns the share of the node's commands that were holds."""
    stop = threading.Event()

    def loop(hz: float, publish) -> None:
        period, t = 1.0 / hz, time.monotonic()
        while not stop.is_set():
            publish()
            t += period
            time.sleep(max(0.0, t - time.monotonic()))

    threads = [threading.Thread(target=loop, args=(camera_hz, lambda: h.image_pub.publish(
                   image(h.now()))), daemon=True),
               threading.Thread(target=loop, args=(joint_hz, lambda: h.joint_pub.publish(
                   joints(h.now()))), daemon=True)]
    time.sleep(0.3)
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(0.5)  # the first cycles wait for both streams: not part of the count
    t_count = time.monotonic()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    counted = h.commands_since(t_count)
    print(f"{camera_hz:.0f}/{joint_hz:.0f} Hz: {len(counted)} cycles in {seconds} s, "
          f"{sum(is_hold(m) for m in counted)} held")
    # A 1 kHz publisher thread in this very process competes with the node for the GIL (a real
    # driver is another process), so under CI load the loop rate can collapse: the share is
    # still measured, on at least a few cycles.
    assert t_count > t0 and len(counted) >= 3, f"only {len(counted)} cycles"
    return sum(is_hold(m) for m in counted) / len(counted)


def test_held_cycles_under_a_1khz_camera_burst_do_not_exceed_the_nominal_feed(tmp_path) -> None:
    ckpt = build_checkpoint(tmp_path / "ckpt", contract=BURST_CONTRACT)
    h = Harness({"checkpoint": str(ckpt), "control_rate_hz": 20.0, "execute_steps": 1})
    try:
        from rclpy.lifecycle import TransitionCallbackReturn

        assert h.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        h.publish_goal("press the button")
        assert h.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        nominal = _feed(h, 20.0, 20.0, 3.0)
        camera_burst = _feed(h, 1000.0, 20.0, 3.0)  # the reference input floods
        state_burst = _feed(h, 20.0, 1000.0, 3.0)  # a partner floods
    finally:
        h.close()
    shares = f"held: nominal {nominal:.3f}, camera burst {camera_burst:.3f}, " \
             f"state burst {state_burst:.3f}"
    assert camera_burst <= nominal + 0.05, shares
    assert state_burst <= nominal + 0.05, shares


def test_the_history_is_a_time_window_with_a_frame_cap() -> None:
    contract = Contract.from_dict(BURST_CONTRACT)
    asm = ObservationAssembler(contract)
    assert abs(asm.window_s() - 0.20) < 1e-9, "largest max_age 0.15 + max_skew 0.05"
    for i in range(1000):  # 1 kHz for one second
        asm.feed("/camera/corner/image_raw", image(_stamp(i * 1e-3)))
    kept = asm._samples["corner"]
    assert 195 <= len(kept) <= 202, "200 ms of frames, not a fixed count"
    capped = ObservationAssembler(contract, history=32)
    for i in range(1000):
        capped.feed("/camera/corner/image_raw", image(_stamp(i * 1e-3)))
    assert len(capped._samples["corner"]) == 32, "the hard cap still bounds memory"


def test_a_partner_that_floods_pairs_with_an_older_reference_frame() -> None:
    """The reference frame is 80 ms old (fresh, 0.15 s max age); the flooding state topic must
    still hold a sample within the 50 ms skew of it: 32 frames at 1 kHz would not."""
    asm = ObservationAssembler(Contract.from_dict(BURST_CONTRACT))
    asm.set_goal("press the button")
    asm.feed("/camera/corner/image_raw", image(_stamp(0.920)))
    for i in range(1000):
        asm.feed("/joint_states", joints(_stamp(i * 1e-3)))
    res = asm.assemble(1.0)
    assert res.observation is not None, res.reason


def _stamp(t: float):
    from builtin_interfaces.msg import Time

    return Time(sec=int(t), nanosec=int(round((t - int(t)) * 1e9)))
