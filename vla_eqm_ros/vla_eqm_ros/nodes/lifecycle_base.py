"""One lifecycle base that owns the transitions; subclasses write hooks (as iblnkn/rosetta does).

rclpy turns an exception raised in a transition callback into ERROR without logging anything, so a
broken checkpoint would fail silently. Here every hook runs under a guard that logs the traceback
and returns FAILURE (configure: stay unconfigured, retry possible) or ERROR (the others).
Deactivate runs ``on_stop`` (the node sends its hold command) before the lifecycle publishers are
turned off, which is the order a robot needs.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn


class ManagedNode(LifecycleNode):
    """Subclass hooks: on_setup, on_start, on_stop, on_teardown (each may raise)."""

    def on_setup(self) -> None:  # configure: load, allocate, create publishers
        pass

    def on_start(self) -> None:  # activate: start commanding
        pass

    def on_stop(self) -> None:  # deactivate: hold position (publishers still active)
        pass

    def on_teardown(self) -> None:  # cleanup / shutdown: release everything from on_setup
        pass

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
        self.get_logger().error(f"error processing from state '{state.label}'; releasing")
        self._guard("error cleanup", self.on_teardown, TransitionCallbackReturn.ERROR)
        return TransitionCallbackReturn.SUCCESS  # back to unconfigured
