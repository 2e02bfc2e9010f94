"""A camera driver that floods far above its nominal rate must not collapse input alignment.

The per-input history is a time window sized from the contract (largest maximum age plus the
allowed skew), with a hard cap on frames; a fixed count of frames (the old 32) spanned 32 ms at
1 kHz. The two deterministic tests at the bottom pin that logic on the assembler.

The live test floods a real node over real DDS from another process, as a camera driver is, and
pins what must hold on any machine: the loop keeps its rate, inputs still pair (a ``skew`` hold
in under a quarter of the cycles: collapse is most of them), and every held cycle is a hold for
a named input reason, never a cycle error. It counts, it does not time, and it compares no hold
shares across feeds. An earlier form did (the held share under the burst within 5 points of the
nominal feed, with the publisher as a thread of this process): on a busy CI machine that thread
starved the node's executor of the GIL, and 4 stale holds in 56 cycles failed the run. Stale
holds are the right answer to a starved executor; they and the skew holds are printed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from policy_node_harness import CONTRACT, Harness, build_checkpoint, image, is_hold, joints

from vla_eqm_ros.contract import Contract
from vla_eqm_ros.decode import ObservationAssembler

BURST_CONTRACT = {**CONTRACT, "cameras": [{**CONTRACT["cameras"][0], "max_age": 0.15}],
                  "state": [{**CONTRACT["state"][0], "max_age": 0.15}],
                  "alignment": {"mode": "asof", "max_skew": 0.05}}
DRIVER = Path(__file__).with_name("burst_driver.py")


def _holds_by_kind(h: Harness) -> dict[str, int]:
    with h.node.stats._lock:
        return dict(h.node.stats.hold_kinds)


def _feed(h: Harness, env: dict[str, str], camera_hz: float, joint_hz: float,
          seconds: float) -> tuple[int, int]:
    """Drive the node from another process for ``seconds``; returns (commands, skew holds)."""
    proc = subprocess.Popen([sys.executable, str(DRIVER), str(camera_hz), str(joint_hz)],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", \
            "the driver did not start"
        time.sleep(0.5)  # the first cycles wait for both streams: not part of the count
        t_count, before = time.monotonic(), _holds_by_kind(h)
        time.sleep(seconds)
        counted, after = h.commands_since(t_count), _holds_by_kind(h)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    kinds = {k: v - before.get(k, 0) for k, v in after.items() if v > before.get(k, 0)}
    print(f"{camera_hz:.0f}/{joint_hz:.0f} Hz: {len(counted)} cycles in {seconds} s, "
          f"{sum(is_hold(m) for m in counted)} held: {kinds}")
    return len(counted), kinds.get("skew", 0)


def test_a_1khz_burst_keeps_the_loop_rate_and_the_inputs_paired(ros_env, tmp_path) -> None:
    ckpt = build_checkpoint(tmp_path / "ckpt", contract=BURST_CONTRACT)
    h = Harness({"checkpoint": str(ckpt), "control_rate_hz": 20.0, "execute_steps": 1})
    try:
        from rclpy.lifecycle import TransitionCallbackReturn

        assert h.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        h.publish_goal("press the button")
        assert h.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        feeds = {"nominal": _feed(h, ros_env, 20.0, 20.0, 3.0),
                 "camera burst": _feed(h, ros_env, 1000.0, 20.0, 3.0),  # the reference floods
                 "state burst": _feed(h, ros_env, 20.0, 1000.0, 3.0)}  # a partner floods
        kinds = _holds_by_kind(h)
    finally:
        h.close()
    nominal_cycles = feeds["nominal"][0]
    assert nominal_cycles >= 20, f"the 20 Hz loop ran {nominal_cycles} cycles in 3 s"
    for feed, (cycles, skew) in feeds.items():
        assert cycles >= nominal_cycles / 2, f"{feed}: {cycles} cycles against {nominal_cycles}"
        assert skew < cycles / 4, f"{feed}: {skew} of {cycles} cycles held unpaired"
    assert set(kinds) <= {"missing", "stale", "skew"}, f"holds for other reasons: {kinds}"


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
