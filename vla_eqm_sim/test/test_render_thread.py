"""rendering.RenderThread and MetaWorldBackend's use of it: every GL call on one thread.

An OSMesa context is current on one thread only. The sim bridge renders from executor threads and
the demo's main thread; one demo run in five died with SIGSEGV in libOSMesa when both drove one
context. These tests render one real backend from a 4-thread MultiThreadedExecutor and the main
thread at once, and record the thread of every GL call.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
import time

import mujoco
import mujoco.gl_context
import numpy as np
import pytest
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor

from vla_eqm_sim.metaworld_backend import MetaWorldBackend
from vla_eqm_sim.rendering import RenderThread

TASK = "button-press-v3"
CAMERAS = ["corner", "gripperPOV"]
SIZES = [(64, 64), (48, 48)]
TIMER_RENDERS = 150  # from the executor's threads, plus MAIN_RENDERS from the main thread
MAIN_RENDERS = 50


class GLCallLog:
    """Records (call, thread id) for the GL entry points of renderers made while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, int, int]] = []  # (call, thread id, id() of the object)
        self._lock = threading.Lock()
        self._mine: set[int] = set()  # id()s of the contexts and renderers created under the log
        for cls, names in (
            (mujoco.gl_context.GLContext, ("__init__", "make_current", "free")),
            (mujoco.Renderer, ("__init__", "update_scene", "render", "close")),
        ):
            for name in names:
                monkeypatch.setattr(cls, name, self._wrap(cls, name, getattr(cls, name)))

    def _wrap(self, cls: type, name: str, original):
        label = f"{cls.__name__}.{name}"

        def wrapper(obj, *args, **kwargs):
            if name == "__init__":
                self._mine.add(id(obj))
            if id(obj) in self._mine:  # not stray garbage from other tests
                with self._lock:
                    self.calls.append((label, threading.get_ident(), id(obj)))
            return original(obj, *args, **kwargs)

        return wrapper

    def threads(self) -> set[int]:
        return {ident for _, ident, _ in self.calls}

    def count(self, label: str) -> int:
        return sum(1 for name, _, _ in self.calls if name == label)

    def objects(self, label: str) -> int:
        """How many distinct objects saw this call (``GLContext.__del__`` frees a second time)."""
        return len({obj for name, _, obj in self.calls if name == label})


@pytest.fixture
def gl_log(monkeypatch) -> GLCallLog:
    return GLCallLog(monkeypatch)


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return set(a) == set(b) and all(np.array_equal(a[c], b[c]) for c in a)


def test_renders_from_executor_threads_and_main_thread_run_on_one_gl_thread(gl_log):
    backend = MetaWorldBackend(TASK, 0, 0)
    context = Context()
    rclpy.init(context=context)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    spinner = None
    try:
        # Reference frames per (variation, size), rendered before any concurrency.
        refs = {}
        for variation in (0, 1):
            backend.reset(TASK, variation, 0)
            for size in SIZES:
                refs[variation, size] = backend.render(CAMERAS, size)
        for size in SIZES:  # two different states, or the check below would prove nothing
            assert not _same(refs[0, size], refs[1, size])

        node = rclpy.create_node("render_probe", context=context)
        group = ReentrantCallbackGroup()
        lock = threading.Lock()
        timer_frames: list[tuple[tuple[int, int], dict]] = []
        caller_threads: set[int] = set()
        started = [0]
        stop = threading.Event()

        def render_from_timer(size: tuple[int, int]) -> None:
            with lock:  # take a slot first: up to four callbacks run at once
                if started[0] >= TIMER_RENDERS:
                    return
                started[0] += 1
                caller_threads.add(threading.get_ident())
            frames = backend.render(CAMERAS, size)
            with lock:
                timer_frames.append((size, frames))
                if len(timer_frames) == TIMER_RENDERS:
                    stop.set()

        for i in range(4):
            node.create_timer(0.002, lambda s=SIZES[i % 2]: render_from_timer(s),
                              callback_group=group)
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()

        # Meanwhile the main thread switches the state back and forth and renders it.
        main_frames = []
        for k in range(MAIN_RENDERS):
            variation, size = k % 2, SIZES[(k // 2) % 2]
            backend.reset(TASK, variation, 0)
            main_frames.append((variation, size, backend.render(CAMERAS, size)))
        assert stop.wait(30.0), f"only {len(timer_frames)} timer renders"
    finally:
        executor.shutdown()
        if spinner is not None:
            spinner.join(5.0)
        backend.close()
        rclpy.shutdown(context=context)

    assert len(caller_threads) >= 2, "the executor never rendered from two threads"
    assert threading.get_ident() not in caller_threads
    # Every frame: the right shape, and identical to the reference of its sim state.
    for variation, size, frames in main_frames:
        assert all(f.shape == (*size, 3) and f.dtype == np.uint8 for f in frames.values())
        assert _same(frames, refs[variation, size]), (variation, size)
    assert len(timer_frames) == TIMER_RENDERS
    for size, frames in timer_frames:  # whichever state the main thread had set at the time
        assert all(f.shape == (*size, 3) and f.dtype == np.uint8 for f in frames.values())
        assert _same(frames, refs[0, size]) or _same(frames, refs[1, size]), size
    # All GL work, from creating the contexts to freeing them, ran on the backend's render thread.
    renders = 2 * len(SIZES) + MAIN_RENDERS + TIMER_RENDERS
    assert gl_log.count("Renderer.render") == renders * len(CAMERAS)
    assert gl_log.count("GLContext.__init__") == gl_log.objects("GLContext.free") == len(SIZES)
    assert gl_log.threads() == {backend._render_thread.ident}
    assert backend._render_thread.ident not in caller_threads | {threading.get_ident()}


def test_close_is_idempotent_and_frees_the_contexts_on_the_render_thread(gl_log):
    backend = MetaWorldBackend(TASK, 0, 0)
    frames = backend.render(CAMERAS, (32, 32))
    assert frames["corner"].shape == (32, 32, 3)
    render_thread = backend._render_thread
    backend.close()
    backend.close()
    assert render_thread.closed and not render_thread._worker.thread.is_alive()
    assert gl_log.objects("GLContext.free") == 1
    assert gl_log.threads() == {render_thread.ident}
    with pytest.raises(RuntimeError, match="closed"):
        backend.render(CAMERAS, (32, 32))

    # A backend dropped without close() frees its contexts on its render thread all the same.
    dropped = MetaWorldBackend(TASK, 0, 0)
    dropped.render(CAMERAS, (32, 32))
    worker = dropped._render_thread._worker.thread
    del dropped
    gc.collect()
    worker.join(5.0)
    assert not worker.is_alive()
    assert gl_log.objects("GLContext.free") == 2
    assert gl_log.threads() == {render_thread.ident, worker.ident}


def test_render_thread_returns_results_reraises_errors_and_reuses_one_thread():
    thread = RenderThread()
    try:
        assert {thread.call(threading.get_ident) for _ in range(20)} == {thread.ident}
        assert thread.call(lambda a, b=0: a + b, 2, b=3) == 5
        assert thread.call(lambda: thread.call(lambda: 7)) == 7  # a job calling back: inline
        with pytest.raises(ZeroDivisionError):
            thread.call(lambda: 1 / 0)
        assert thread.call(lambda: "still serving") == "still serving"
    finally:
        thread.close()
    thread.close()
    with pytest.raises(RuntimeError, match="closed"):
        thread.call(lambda: None)


def test_an_unclosed_backend_does_not_hang_or_crash_the_interpreter_at_exit(ros_env):
    script = textwrap.dedent(
        f"""
        from vla_eqm_sim.metaworld_backend import MetaWorldBackend
        b = MetaWorldBackend({TASK!r}, 0, 0)
        b.render({CAMERAS!r}, (32, 32))
        print("rendered", flush=True)
        """
    )
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], env=ros_env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "rendered" in done.stdout
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert time.monotonic() - start < 30
