"""The lifecycle base's error path: a failed release is reported, not papered over."""

from __future__ import annotations

import rclpy
from rclpy.context import Context
from rclpy.lifecycle import TransitionCallbackReturn

from vla_eqm_ros.nodes.lifecycle_base import ManagedNode


class _Broken(ManagedNode):
    """Activation fails (ERROR -> error processing); ``release_fails`` makes teardown fail too."""

    def __init__(self, context: Context, release_fails: bool) -> None:
        super().__init__("broken_node", context=context)
        self.release_fails = release_fails
        self.released = 0

    def on_start(self) -> None:
        raise RuntimeError("activation failed on purpose")

    def on_teardown(self) -> None:
        self.released += 1
        if self.release_fails:
            raise RuntimeError("release failed on purpose")


def _run(release_fails: bool) -> tuple[str, int]:
    context = Context()
    rclpy.init(context=context)
    node = _Broken(context, release_fails)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.ERROR
        return node.lifecycle_state, node.released
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_error_processing_releases_and_returns_to_unconfigured() -> None:
    state, released = _run(release_fails=False)
    assert (state, released) == ("unconfigured", 1), "released, retry possible"


def test_a_release_that_fails_during_error_processing_finalizes_the_node() -> None:
    state, released = _run(release_fails=True)
    assert (state, released) == ("finalized", 1), \
        "a half-released node must not look like a clean unconfigured one"
