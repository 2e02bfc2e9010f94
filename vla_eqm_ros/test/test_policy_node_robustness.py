"""Weak spots found by probing the node as a new user would (issue #16): a checkpoint whose model
and contract disagree on camera sizes or counts, goals of any length in the log, and what
/diagnostics says about each input now rather than the last reason ever seen."""

from __future__ import annotations

import time

import yaml
from policy_node_harness import CONTRACT, Harness, build_checkpoint, image, unique_name
from rclpy.lifecycle import TransitionCallbackReturn

from vla_eqm_ros.checkpoint import load_config
from vla_eqm_ros.compat import check_compatible
from vla_eqm_ros.contract import Contract
from vla_eqm_ros.waiting import wait_until

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


def _with_contract(tmp_path, contract: dict) -> tuple[str, str]:
    ckpt = build_checkpoint(tmp_path / "ckpt")
    (tmp_path / "contract.yaml").write_text(yaml.safe_dump(contract))
    return str(ckpt), str(tmp_path / "contract.yaml")


def test_a_camera_size_that_differs_from_the_model_fails_configure_naming_both(tmp_path) -> None:
    bigger = {**CONTRACT, "cameras": [{**CONTRACT["cameras"][0], "height": 48, "width": 40}]}
    ckpt, contract = _with_contract(tmp_path, bigger)
    cfg = load_config(ckpt)
    try:
        check_compatible(Contract.from_yaml(contract), cfg)
    except ValueError as exc:
        why = str(exc)
    else:
        raise AssertionError("a camera size mismatch passed the check")
    assert "camera 'corner': contract 48x40 (HxW), model 32x32" in why
    name = unique_name()
    h = Harness({"checkpoint": ckpt, "contract": contract}, node_name=name)
    try:
        assert h.node.trigger_configure() == FAILURE
        assert h.node.lifecycle_state == "unconfigured"
        assert h.wait_for(lambda: h.logged("contract 48x40 (HxW), model 32x32"), timeout=5.0)
    finally:
        h.close()


def test_a_camera_count_that_differs_from_the_model_is_named(tmp_path) -> None:
    two = {**CONTRACT, "cameras": [CONTRACT["cameras"][0], {**CONTRACT["cameras"][0],
                                   "name": "wrist", "topic": "/camera/wrist/image_raw"}]}
    ckpt, contract = _with_contract(tmp_path, two)
    try:
        check_compatible(Contract.from_yaml(contract), load_config(ckpt))
    except ValueError as exc:
        assert "contract has 2 cameras ['corner', 'wrist'], model 1 ['corner']" in str(exc)
        assert "contract camera 'wrist' unknown to the model" in str(exc)
    else:
        raise AssertionError("a camera count mismatch passed the check")


def test_a_10kb_goal_makes_a_bounded_log_line_and_reaches_the_model_whole(tmp_path) -> None:
    goal = ("press the button " * 600).strip()  # 10.2 kB (the decoder strips whitespace)
    h = Harness({"checkpoint": str(build_checkpoint(tmp_path / "ckpt"))},
                node_name=unique_name())
    try:
        assert h.node.trigger_configure() == SUCCESS
        h.publish_goal(goal)
        assert h.wait_for(lambda: h.logged("new goal"), timeout=10.0)
        with h.lock:
            line = next(m for m in h.logs if "new goal" in m)
        assert len(line) < 400, f"{len(line)}-character log line"
        assert f"({len(goal)} chars)" in line
        assert h.node.hub.assembler.goal == goal, "the model gets the whole goal"
    finally:
        h.close()


def _input_state(h: Harness, topic: str) -> str:
    return h.diagnostics_values().get(f"input[{topic}]", "")


def test_diagnostics_report_each_inputs_current_state_and_since_when(tmp_path) -> None:
    h = Harness({"checkpoint": str(build_checkpoint(tmp_path / "ckpt"))},
                node_name=unique_name())
    cam = "/camera/corner/image_raw"
    try:
        h.activate_with_stream()
        assert h.wait_for(lambda: _input_state(h, cam).startswith("ok (since"), timeout=10.0)
        h.stop_stream()

        def rejected() -> bool:  # a broken driver: every frame has an unknown encoding
            bad = image(h.now())
            bad.encoding = "yuv422_weird"
            h.image_pub.publish(bad)
            return _input_state(h, cam).startswith("rejected: ")

        assert wait_until(rejected, 10.0, poll=0.05)
        assert "yuv422_weird" in _input_state(h, cam)
        since = _input_state(h, cam)
        h.start_stream()  # recovery: good frames again
        assert h.wait_for(lambda: _input_state(h, cam).startswith("ok (since"), timeout=10.0), \
            "a recovered input reads ok, not its last rejection"
        assert since != _input_state(h, cam)
        assert int(h.diagnostics_values().get(f"rejected[{cam}]", "0")) >= 1, "the count stays"
        h.stop_stream()
        time.sleep(0.6)  # past the 0.3 s maximum age
        assert h.wait_for(lambda: _input_state(h, cam).startswith("stale ("), timeout=10.0)
    finally:
        h.close()



def test_a_feed_slower_than_its_maximum_age_allows_is_warned_once_naming_the_fix(tmp_path) -> None:
    h = Harness({"checkpoint": str(build_checkpoint(tmp_path / "ckpt")),
                 "camera_max_age": 0.1, "state_max_age": 0.1}, node_name=unique_name())
    try:
        assert h.node.trigger_configure() == SUCCESS
        h.publish_goal("press the button")
        h.start_stream(rate_hz=5.0)  # every 200 ms against a 100 ms maximum age
        def warned() -> list[str]:
            return [m for m in h.logs if "arrives every" in m]

        assert h.wait_for(lambda: len(warned()) >= 2, timeout=15.0), "one line per input"
        with h.lock:
            lines = warned()
        assert any("/camera/corner/image_raw" in m and "camera_max_age >=" in m for m in lines)
        assert any("/joint_states" in m and "state_max_age >=" in m for m in lines)
        time.sleep(2.0)
        with h.lock:
            assert len([m for m in h.logs if "arrives every" in m]) == len(lines) == 2, \
                "once per input"
    finally:
        h.close()
