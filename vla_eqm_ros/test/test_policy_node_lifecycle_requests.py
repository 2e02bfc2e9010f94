"""Every lifecycle request from every state, sent the way an operator's rqt or a lifecycle client
sends it: over the ``~/change_state`` service, through real DDS.

Before the refusal in ``lifecycle_base``, an unavailable transition (activate while unconfigured,
configure while active) raised ``RCLError`` out of the service callback, killed the executor and
left the node deaf with a policy command as the last thing on the wire.
"""

from __future__ import annotations

import time

import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from policy_node_harness import Harness, build_checkpoint, is_hold, unique_name

IDS = {
    "configure": Transition.TRANSITION_CONFIGURE,
    "cleanup": Transition.TRANSITION_CLEANUP,
    "activate": Transition.TRANSITION_ACTIVATE,
    "deactivate": Transition.TRANSITION_DEACTIVATE,
    "unconfigured_shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
    "inactive_shutdown": Transition.TRANSITION_INACTIVE_SHUTDOWN,
    "active_shutdown": Transition.TRANSITION_ACTIVE_SHUTDOWN,
}
# what each state offers (rclpy's graph); everything else must be refused
VALID = {
    "unconfigured": {"configure", "unconfigured_shutdown"},
    "inactive": {"cleanup", "activate", "inactive_shutdown"},
    "active": {"deactivate", "active_shutdown"},
}
LABELS = ("configure", "cleanup", "activate", "deactivate")  # by label too (shutdown is valid
# from every primary state, so its label is never refused there)


def _change(h: Harness, transition_id: int = 0, label: str = "") -> bool:
    req = ChangeState.Request()
    req.transition.id, req.transition.label = transition_id, label
    return bool(h.call(ChangeState, f"/{h.name}/change_state", req).success)


def _state(h: Harness) -> str:
    return str(h.call(GetState, f"/{h.name}/get_state", GetState.Request()).current_state.label)


def _go_to(h: Harness, state: str) -> None:
    if state in ("inactive", "active"):
        assert _change(h, IDS["configure"])
    if state == "active":
        h.publish_goal("press the button")
        h.start_stream()
        assert _change(h, IDS["activate"])
        assert h.wait_for(lambda: sum(not is_hold(m) for m in h.commands_since(0.0)) >= 3)
    assert _state(h) == state


@pytest.mark.parametrize("state", ["unconfigured", "inactive", "active"])
def test_every_unavailable_transition_is_refused_with_a_reason_and_the_node_keeps_serving(
        tmp_path, state: str) -> None:
    h = Harness({"checkpoint": str(build_checkpoint(tmp_path / "ckpt"))},
                node_name=unique_name())
    try:
        _go_to(h, state)
        invalid = [(tid, "") for name, tid in IDS.items() if name not in VALID[state]]
        invalid += [(0, label) for label in LABELS
                    if not any(v.startswith(label) or v == label for v in VALID[state])]
        assert invalid
        t0 = time.monotonic()
        for tid, label in invalid:
            assert _change(h, tid, label) is False, f"{tid or label} accepted in {state}"
            assert _state(h) == state, "a refused request never changes the state"
        assert h.executor_alive(), "the executor survived every refused request"
        assert h.wait_for(lambda: h.logged("refused lifecycle request"), timeout=5.0)
        assert h.logged(f"in state '{state}'")
        if state == "active":
            # still commanding: cycles go on after the refusals (the node is not deaf)
            n = len(h.commands_since(t0))
            assert h.wait_for(lambda: len(h.commands_since(t0)) >= n + 5, timeout=10.0)
            assert any(not is_hold(m) for m in h.commands_since(t0))
        else:
            time.sleep(0.5)
            assert h.commands_since(t0) == [], "nothing published by a node that is not active"
        # and a valid request still works afterwards
        nxt = {"unconfigured": "configure", "inactive": "activate", "active": "deactivate"}[state]
        t1 = time.monotonic()
        assert _change(h, IDS[nxt])
        if nxt == "deactivate":
            assert h.wait_for(lambda: len(h.commands_since(t1)) >= 1, timeout=5.0)
            time.sleep(0.3)
            assert is_hold(h.commands_since(t1)[-1]), "the hold it owes on deactivation"
    finally:
        h.close()


def test_programmatic_triggers_refuse_instead_of_raising(tmp_path) -> None:
    from rclpy.lifecycle import TransitionCallbackReturn

    h = Harness({"checkpoint": str(build_checkpoint(tmp_path / "ckpt"))})
    try:
        assert h.node.trigger_activate() == TransitionCallbackReturn.FAILURE
        assert h.node.trigger_deactivate() == TransitionCallbackReturn.FAILURE
        assert h.node.trigger_cleanup() == TransitionCallbackReturn.FAILURE
        result, why = h.node.request_transition("activate")
        assert result == TransitionCallbackReturn.FAILURE
        assert "not available in state 'unconfigured'" in why and "configure" in why
        assert h.node.lifecycle_state == "unconfigured"
    finally:
        h.close()
