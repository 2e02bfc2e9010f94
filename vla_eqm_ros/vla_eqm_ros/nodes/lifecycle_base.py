"""One lifecycle base that owns the transitions; subclasses write hooks (as iblnkn/rosetta does).

rclpy turns an exception raised in a transition callback into ERROR without logging anything, so a
broken checkpoint would fail silently. Here every hook runs under a guard that logs the traceback
and returns FAILURE (configure: stay unconfigured, retry possible) or ERROR (the others).
Deactivate runs ``on_stop`` (the node sends its hold command) before the lifecycle publishers are
turned off, which is the order a robot needs.

Transition requests are refused, never raised. rclpy's ``~/change_state`` service (and its
``trigger_*`` methods) raise ``RCLError: Transition is not registered`` for a transition that the
current state does not offer (activate while unconfigured, configure while active). Raised in a
service callback, that error escapes ``executor.spin()`` and leaves the node deaf with a policy
command as the last thing on the wire. Every request therefore goes through ``request_transition``:
an unavailable one is answered ``success = false`` with a logged reason naming the state and the
transitions it offers; nothing reaches the executor.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

# rclpy's name-mangled transition driver (LifecycleNodeMixin.__change_state)
_CHANGE_STATE = "_LifecycleNodeMixin__change_state"
_SHUTDOWN_IDS = (Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
                 Transition.TRANSITION_INACTIVE_SHUTDOWN, Transition.TRANSITION_ACTIVE_SHUTDOWN)


class ManagedNode(LifecycleNode):
    """Subclass hooks: on_setup, on_start, on_stop, on_teardown (each may raise)."""

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        service = getattr(self, "_service_change_state", None)
        if service is not None:  # the lifecycle services exist (enable_communication_interface)
            service.callback = self._on_change_state_request

    def on_setup(self) -> None:  # configure: load, allocate, create publishers
        pass

    def on_start(self) -> None:  # activate: start commanding
        pass

    def on_stop(self) -> None:  # deactivate: hold position (publishers still active)
        pass

    def on_teardown(self) -> None:  # cleanup / shutdown: release everything from on_setup
        pass

    # ------------------------------------------------------------------ transition requests

    @property
    def lifecycle_state(self) -> str:
        """The current state's label: unconfigured, inactive, active, finalized, ..."""
        return str(self._state_machine.current_state[1])

    def _available(self) -> list[tuple[int, str, str]]:
        """(id, label, goal label) of every transition the current state offers."""
        return [(int(t[0]), str(t[1]), str(t[5]))
                for t in self._state_machine.available_transitions]

    def transition_refusal(self, transition: int | str) -> tuple[int | None, str]:
        """(transition id, "") when ``transition`` (id or label) is possible now, else
        (None, why). Labels are rclpy's: configure, cleanup, activate, deactivate, shutdown."""
        state, offered = self.lifecycle_state, self._available()
        for tid, label, _goal in offered:
            if transition in (tid, label):
                return tid, ""
        names = ", ".join(label for _, label, _ in offered) or "none"
        return None, (f"transition {transition!r} is not available in state '{state}' "
                      f"(available: {names})")

    def request_transition(self, transition: int | str) -> tuple[TransitionCallbackReturn, str]:
        """Run ``transition`` if the current state offers it; never raises.

        Returns (result, reason): FAILURE with the reason for a refused or failed request.
        """
        tid, why = self.transition_refusal(transition)
        if tid is None:
            self.get_logger().warning(f"refused lifecycle request: {why}")
            return TransitionCallbackReturn.FAILURE, why
        try:
            result = getattr(self, _CHANGE_STATE)(tid)
        except Exception:  # the state machine itself failed: report, never propagate
            why = f"transition {transition!r} failed:\n{traceback.format_exc()}"
            self.get_logger().error(why)
            return TransitionCallbackReturn.FAILURE, why
        if result != TransitionCallbackReturn.SUCCESS:
            return result, (f"transition {transition!r} returned {result.to_label()}; now in "
                            f"state '{self.lifecycle_state}'")
        return result, ""

    def _on_change_state_request(self, request: ChangeState.Request,
                                 response: ChangeState.Response) -> ChangeState.Response:
        """``~/change_state``: by label when one is given (rclpy's rule), else by id."""
        transition = request.transition.label or int(request.transition.id)
        result, _why = self.request_transition(transition)
        response.success = result == TransitionCallbackReturn.SUCCESS
        return response

    def trigger_configure(self) -> TransitionCallbackReturn:
        return self.request_transition(Transition.TRANSITION_CONFIGURE)[0]

    def trigger_cleanup(self) -> TransitionCallbackReturn:
        return self.request_transition(Transition.TRANSITION_CLEANUP)[0]

    def trigger_activate(self) -> TransitionCallbackReturn:
        return self.request_transition(Transition.TRANSITION_ACTIVATE)[0]

    def trigger_deactivate(self) -> TransitionCallbackReturn:
        return self.request_transition(Transition.TRANSITION_DEACTIVATE)[0]

    def trigger_shutdown(self) -> TransitionCallbackReturn:
        offered = {tid for tid, _, _ in self._available()}
        tid = next((t for t in _SHUTDOWN_IDS if t in offered),
                   Transition.TRANSITION_ACTIVE_SHUTDOWN)
        return self.request_transition(tid)[0]

    # ------------------------------------------------------------------ transition callbacks

    def _guard(self, what: str, hook: Callable[[], None],
               failure: TransitionCallbackReturn) -> TransitionCallbackReturn:
        try:
            hook()
        except Exception:  # a transition must report, never propagate
            self.get_logger().error(f"{what} failed:\n{traceback.format_exc()}")
            return failure
        return TransitionCallbackReturn.SUCCESS

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = self._guard("configure", self.on_setup, TransitionCallbackReturn.FAILURE)
        if ret != TransitionCallbackReturn.SUCCESS:
            self._guard("cleanup after failed configure", self.on_teardown,
                        TransitionCallbackReturn.ERROR)
            return ret
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)  # lifecycle publishers on first: on_start may publish
        if ret != TransitionCallbackReturn.SUCCESS:
            return ret
        return self._guard("activate", self.on_start, TransitionCallbackReturn.ERROR)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = self._guard("deactivate", self.on_stop, TransitionCallbackReturn.ERROR)
        super().on_deactivate(state)  # publishers off after the hold command went out
        return ret

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = self._guard("cleanup", self.on_teardown, TransitionCallbackReturn.ERROR)
        super().on_cleanup(state)
        return ret

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if state.label == "active":
            self._guard("stop before shutdown", self.on_stop, TransitionCallbackReturn.ERROR)
        ret = self._guard("shutdown", self.on_teardown, TransitionCallbackReturn.ERROR)
        super().on_shutdown(state)
        return ret

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release and go back to unconfigured; a failed release finalizes the node (FAILURE),
        because an unconfigured node that still holds half its resources is not a clean retry."""
        self.get_logger().error(f"error processing from state '{state.label}'; releasing")
        return self._guard("error cleanup", self.on_teardown, TransitionCallbackReturn.FAILURE)
