"""Fast offscreen camera frames from a MuJoCo model, upright and ready to publish.

Measured on the CPU machines (OSMesa): the stock settings cost about 50 ms per frame at any size,
because of a 4096^2 shadow map and 4x MSAA. With ``shadowsize = 0`` and ``offsamples = 0`` a
96-128 px frame costs 6-11 ms and looks the same apart from the soft shadows. Meta-World's cameras
also come back upside down, so every frame is flipped vertically here, in one place.

GL contexts are bound to threads, so every GL call (creating, rendering, freeing a renderer) goes
through one ``RenderThread``; see its docstring.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Callable
from typing import TypeVar

import mujoco
import numpy as np

T = TypeVar("T")


def apply_fast_render_settings(model: mujoco.MjModel) -> None:
    """Drop the shadow map and multisampling; must run before a Renderer is created."""
    model.vis.quality.shadowsize = 0
    model.vis.quality.offsamples = 0


class CameraRenderer:
    """One offscreen renderer per (model, size), reused across frames and cameras.

    ``flip_vertical`` is True for Meta-World, whose camera frames come out upside down even after
    ``mujoco.Renderer``'s own flip.

    Not thread-safe: create, use and close it on one thread (``RenderThread`` does that for the
    backends), because its GL context is current on one thread only.
    """

    def __init__(
        self, model: mujoco.MjModel, height: int, width: int, flip_vertical: bool = True
    ) -> None:
        apply_fast_render_settings(model)
        # The offscreen buffer must hold the requested frame.
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), width)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), height)
        self.model = model
        self.size = (height, width)
        self.flip_vertical = flip_vertical
        self._renderer = mujoco.Renderer(model, height=height, width=width)
        self._camera_names = {model.camera(i).name for i in range(model.ncam)}

    def render(self, data: mujoco.MjData, camera: str) -> np.ndarray:
        """An upright (H, W, 3) uint8 RGB frame from the named camera."""
        if camera not in self._camera_names:
            raise ValueError(f"unknown camera {camera!r}; known: {sorted(self._camera_names)}")
        self._renderer.update_scene(data, camera=camera)
        frame = self._renderer.render()
        if self.flip_vertical:
            frame = frame[::-1]
        return np.ascontiguousarray(frame)

    def close(self) -> None:
        """Free the GL and MuJoCo contexts; on the thread that created them."""
        self._renderer.close()



class RenderThread:
    """The one thread that owns every GL context: all renderer creation, rendering and freeing.

    Why: an OSMesa (or any OpenGL) context is current on one thread at a time, and
    ``mujoco.Renderer.render`` makes its context current on whichever thread calls it. When the
    sim bridge renders from an executor thread while the demo's main thread resets and renders
    too, two threads drive one context at once, and libOSMesa crashes (SIGSEGV, null read). So
    callers never touch GL themselves: ``call(fn)`` queues ``fn`` here, waits, and returns its
    result or re-raises its exception. Jobs run one at a time, in submission order.

    One long-lived daemon worker serves every call (a queue put and an event wait, tens of
    microseconds against 6-11 ms per frame); no thread is created per call. The worker never
    references this object, so dropping the last reference stops it too. ``close()`` finishes the
    queued jobs, then stops and joins the worker; it is idempotent, and it also runs at interpreter
    exit (``weakref.finalize``), while daemon threads still run, so exit never hangs on it.
    """

    def __init__(self, name: str = "gl-render") -> None:
        self._worker = _Worker(name)
        self._finalizer = weakref.finalize(self, self._worker.stop)

    @property
    def ident(self) -> int | None:
        """``threading.get_ident()`` of the worker: the only thread that makes GL calls."""
        return self._worker.thread.ident

    @property
    def closed(self) -> bool:
        return self._worker.closed

    def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run ``fn(*args, **kwargs)`` on the render thread; return its result or raise its error.

        Raises RuntimeError once closed. A call from the render thread itself (a job calling back)
        runs inline, so it cannot deadlock waiting for itself.
        """
        if threading.get_ident() == self._worker.thread.ident:
            return fn(*args, **kwargs)
        job = _Job(fn, args, kwargs)
        self._worker.submit(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def close(self) -> None:
        """Finish the queued jobs, then stop and join the worker. Safe to call more than once."""
        self._finalizer()


class _Job:
    __slots__ = ("fn", "args", "kwargs", "done", "result", "error")

    def __init__(self, fn: Callable, args: tuple, kwargs: dict) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.done = threading.Event()
        self.result = None
        self.error: BaseException | None = None


class _Worker:
    """The thread, its queue and the closed flag: everything the finalizer needs, and nothing
    that refers back to the RenderThread."""

    JOIN_TIMEOUT_S = 10.0

    def __init__(self, name: str) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.lock = threading.Lock()  # orders "closed?" checks against the stop sentinel
        self.closed = False
        self.thread = threading.Thread(target=_serve, args=(self.jobs,), name=name, daemon=True)
        self.thread.start()

    def submit(self, job: _Job) -> None:
        with self.lock:
            if self.closed:
                raise RuntimeError("the render thread is closed")
            self.jobs.put(job)

    def stop(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.jobs.put(None)  # after every job already queued
        if threading.current_thread() is not self.thread:
            self.thread.join(self.JOIN_TIMEOUT_S)


def _serve(jobs: queue.SimpleQueue) -> None:
    """The worker loop: run jobs until the ``None`` sentinel."""
    while True:
        job = jobs.get()
        if job is None:
            return
        try:
            job.result = job.fn(*job.args, **job.kwargs)
        except BaseException as err:  # handed to the caller, whatever it is
            job.error = err
        finally:
            job.fn = job.args = job.kwargs = None  # drop references before waking the caller
            job.done.set()
        del job
