"""Worker processes for recording and evaluation: their environment, their ROS domain, and a pool
that hands jobs to whichever worker is free.

Each worker runs its own bridge and clients in its own process, so it must not hear another
worker's topics: worker k gets a private ``ROS_DOMAIN_ID`` derived from the caller's, and DDS
stays on loopback. Jobs and results travel as JSON lines over the worker's stdin and stdout (its
stderr is the caller's, so warnings and errors reach the terminal); a job is finished when the
worker prints a line with ``"event": "job_done"``.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any


def add_worker_arguments(parser: Any, default: int, what: str) -> None:
    """``--workers`` and ``--domain-base``, the same on every command that runs workers."""
    parser.add_argument("--workers", type=int, default=default,
                        help=f"parallel worker processes ({what})")
    parser.add_argument("--domain-base", type=int, default=None,
                        help="worker k uses ROS_DOMAIN_ID 1 + (base + k) %% 200, or the next "
                             "one no other worker pool on this host holds (default base: "
                             "ROS_DOMAIN_ID)")


def domain_base(explicit: int | None = None) -> int:
    """The base of the workers' domain ids: ``explicit``, else the caller's ``ROS_DOMAIN_ID``."""
    return explicit if explicit is not None else int(os.environ.get("ROS_DOMAIN_ID", "44"))


def worker_domain(base: int, k: int) -> int:
    """Worker k's ``ROS_DOMAIN_ID``: 1 + (base + k) mod 200, never 0 (the default domain)."""
    return 1 + (base + k) % 200


DOMAIN_LOCKS = Path(tempfile.gettempdir()) / "vla_eqm_domains"


def claim_domain(preferred: int) -> tuple[int, IO[str]]:
    """The first ROS domain from ``preferred`` on that no other pool on this host holds, and the
    open lock file that holds it (closing it, or the process ending, frees the domain).

    Two jobs started with nearby ``ROS_DOMAIN_ID``s would otherwise give their workers the same
    domain, and each worker would hear the other's bridge: episodes then fail or succeed for the
    wrong reason and nothing says so. DDS stays on loopback here, so a host-local lock covers
    every pool that can hear another."""
    DOMAIN_LOCKS.mkdir(parents=True, exist_ok=True)
    for j in range(200):
        domain = worker_domain(preferred - 1, j)  # preferred, then the next ones, wrapping
        fh = (DOMAIN_LOCKS / f"{domain}.lock").open("w")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            continue
        return domain, fh
    raise WorkerError(f"every ROS domain is held by another worker pool ({DOMAIN_LOCKS})")


def worker_env(domain: int, threads: int = 1) -> dict[str, str]:
    """The environment of one worker: private domain, loopback discovery, offscreen rendering,
    offline language model, and ``threads`` intra-op threads (one per core when N run)."""
    env = dict(os.environ)
    env.update({"ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
                "MUJOCO_GL": env.get("MUJOCO_GL", "osmesa"),
                "PYOPENGL_PLATFORM": env.get("PYOPENGL_PLATFORM", "osmesa"),
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "OMP_NUM_THREADS": str(threads)})
    return env


def emit(event: dict[str, Any]) -> None:
    """One JSON line to the pool (a worker's stdout is the pool's channel)."""
    print(json.dumps(event), flush=True)


def serve(start: Callable[[dict[str, Any]], Any],
          handle: Callable[[Any, dict[str, Any], Callable[[dict[str, Any]], None]], None],
          errors: tuple[type[BaseException], ...] = (Exception,)) -> int:
    """The worker side of ``JobPool``: jobs from stdin, one JSON line each; the session is
    ``start(first job)`` (built once, closed at the end); ``handle(session, job, emit)`` runs a
    job and emits its events, ending with ``job_done``. An exception of ``errors`` becomes an
    ``error`` event naming it, and exit code 1."""
    session = None
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            job = json.loads(line)
            if session is None:
                session = start(job)
            handle(session, job, emit)
    except errors as exc:
        emit({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    finally:
        if session is not None:
            session.close()
    return 0


class WorkerError(RuntimeError):
    """A worker died or reported an error; the message says which and why."""


class JobPool:
    """``n`` processes of ``python -m module ARG``, each fed one job at a time from a shared
    queue, so a slow job (a hard task, a long episode) never leaves another worker idle.

    Used as a context manager, the processes outlive one ``run`` and serve the next (RL runs one
    batch of rollouts per iteration; a worker's start-up, its model and simulator, is paid once).
    """

    def __init__(self, module: str, n: int, arg: str = "", base: int | None = None) -> None:
        self.module = module
        self.n = n
        self.arg = arg
        self.base = domain_base(base)
        self._procs: dict[int, subprocess.Popen] = {}
        self._locks: dict[int, IO[str]] = {}  # worker k's claim on its domain
        self.domains: dict[int, int] = {}
        self._keep = False

    def __enter__(self) -> JobPool:
        self._keep = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._keep = False
        for k in list(self._procs):
            self._close(k)

    def _proc(self, k: int) -> subprocess.Popen:
        if k not in self._procs or self._procs[k].poll() is not None:
            if k not in self._locks:  # skips domains another pool (or this one) holds
                self.domains[k], self._locks[k] = claim_domain(worker_domain(self.base, k))
            self._procs[k] = subprocess.Popen(
                [sys.executable, "-m", self.module, self.arg], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True, bufsize=1,
                env=worker_env(self.domains[k]))
        return self._procs[k]

    def _close(self, k: int) -> None:
        proc = self._procs.pop(k)
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.domains.pop(k, None)
        lock = self._locks.pop(k, None)
        if lock is not None:
            lock.close()

    def run(self, jobs: Iterable[dict[str, Any]],
            on_event: Callable[[dict[str, Any]], None]) -> list[str]:
        """Run every job; ``on_event`` sees each JSON line (from the caller's thread only, one
        at a time). Returns the errors (empty when every job finished)."""
        todo: queue.Queue[dict[str, Any]] = queue.Queue()
        for job in jobs:
            todo.put(job)
        events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        errors: list[str] = []
        stop = threading.Event()

        def serve(k: int) -> None:
            failed = False
            try:
                while not stop.is_set():
                    try:
                        job = todo.get_nowait()
                    except queue.Empty:
                        break
                    proc = self._proc(k)
                    assert proc.stdin is not None and proc.stdout is not None
                    proc.stdin.write(json.dumps(job) + "\n")
                    proc.stdin.flush()
                    for line in proc.stdout:
                        if not line.startswith("{"):
                            continue
                        event = json.loads(line)
                        events.put({**event, "worker": k})
                        if event.get("event") in ("job_done", "error"):
                            break
                    else:
                        raise WorkerError(f"worker {k} exited (code {proc.wait()}) during "
                                          f"{job}")
                    if event.get("event") == "error":
                        raise WorkerError(f"worker {k}: {event.get('message')}")
            except (WorkerError, OSError) as exc:
                errors.append(str(exc))
                failed = True
                stop.set()
            finally:
                if k in self._procs and (failed or not self._keep):
                    self._close(k)
                events.put(None)

        threads = [threading.Thread(target=serve, args=(k,), daemon=True) for k in range(self.n)]
        for t in threads:
            t.start()
        running = len(threads)
        try:
            while running:
                event = events.get()
                if event is None:
                    running -= 1
                else:
                    on_event(event)
        except BaseException:
            stop.set()
            raise
        return errors
