"""Node-agnostic process runtime: loopback guard, parameter files, supervised spinning, teardown.

Every in-process bring-up (``bringup``, the demo, live replay, the eval workers, benches and test
harnesses) needs the same few things, written once here:

- ``require_loopback``: DDS stays on 127.0.0.1 unless a robot network is asked for by name;
- ``load_params`` / ``parse_value``: ROS 2 parameter YAML and ``NAME:=VALUE`` overrides;
- ``SupervisedSpin``: the executor in a thread whose death is *noticed*. rclpy's ``spin()`` ends
  on the first exception a callback raises; in a bare thread that leaves a process that is alive
  but deaf (no callback ever runs again), and a robot whose last command was a policy action.
  The supervisor records the traceback, runs an ``on_death`` hook (the policy node's hold) at
  once, and lets the main thread exit non-zero so launch's ``respawn`` or systemd restarts it;
- ``InProcess``: context + nodes + supervised executor as a context manager;
- ``shut_down``: the one teardown order (hold first, then executor, nodes, context).

No policy-specific code lives here: the policy node is reached through two duck-typed methods,
``lifecycle_state`` and ``emergency_hold``.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

EXECUTOR_DIED = 70  # exit code (EX_SOFTWARE) of a process whose executor stopped under it


def require_loopback(allow_network: bool = False) -> None:
    """Set loopback-only discovery when unset; refuse anything else unless explicitly allowed."""
    current = os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if current != "LOCALHOST" and not allow_network:
        raise SystemExit(f"ROS_AUTOMATIC_DISCOVERY_RANGE={current}: refusing to leave loopback "
                         "(pass --allow-network on a robot network)")


def ensure_ament_prefix() -> None:
    """Entry points run straight from the venv (no ``scripts/dev_env.sh``): the pip-installed ROS
    prefix is the venv itself, so point ``AMENT_PREFIX_PATH`` there when it is unset. Without any
    ROS prefix, exit with the one line that says what to source."""
    import sys

    if os.environ.get("AMENT_PREFIX_PATH"):
        return
    if os.path.isdir(os.path.join(sys.prefix, "share", "ament_index")):
        os.environ["AMENT_PREFIX_PATH"] = sys.prefix
        return
    raise SystemExit("AMENT_PREFIX_PATH is not set: source your ROS 2 setup "
                     "(/opt/ros/jazzy/setup.bash, a workspace's install/setup.bash) or, in a "
                     "checkout, scripts/dev_env.sh")


def private_domain() -> None:
    """A ROS_DOMAIN_ID of this process's own when none is set (tools that start their own
    graph, such as the demo, must not hear another run on the same machine)."""
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 200))


def load_params(path: Path, node_name: str) -> dict[str, Any]:
    """The ``ros__parameters`` of ``node_name`` (or ``/**``) from a ROS 2 parameter YAML."""
    doc = yaml.safe_load(Path(path).read_text()) or {}
    out: dict[str, Any] = {}
    for key in ("/**", node_name, f"/{node_name}"):
        out.update((doc.get(key) or {}).get("ros__parameters") or {})
    return out


def parse_value(text: str) -> Any:
    """A ``NAME:=VALUE`` value as ``ros2 run --ros-args -p`` reads it (YAML scalars and lists)."""
    return yaml.safe_load(text)


def parse_overrides(items: Iterable[str], flag: str = "--param") -> dict[str, Any]:
    """``NAME:=VALUE`` strings -> {name: value}; a malformed item is a clear error."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition(":=")
        if not sep or not name:
            raise SystemExit(f"{flag} {item!r}: expected NAME:=VALUE")
        out[name] = parse_value(text)
    return out


class SupervisedSpin:
    """``executor.spin()`` in a daemon thread that reports how it ended.

    ``on_death(traceback_text)`` runs in the spin thread right after an exception escaped the
    executor (never on a clean shutdown). ``wait`` returns when the context shuts down, the
    deadline passes or the executor died; ``error`` then holds the traceback.
    """

    def __init__(self, executor: Any, context: Any,
                 on_death: Callable[[str], None] | None = None) -> None:
        self.executor = executor
        self.context = context
        self.on_death = on_death
        self.error: str | None = None
        self.stopping = threading.Event()  # set before a requested teardown: not a death
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="executor", daemon=True)

    def start(self) -> SupervisedSpin:
        self._thread.start()
        return self

    @property
    def died(self) -> bool:
        return self.error is not None

    @property
    def spinning(self) -> bool:
        """The executor still runs (neither died nor stopped)."""
        return not self._ended.is_set()

    def _spin(self) -> None:
        try:
            self.executor.spin()
            cause = "executor.spin() returned while the process was still running"
        except BaseException:  # any way out of spin() while running is a death
            cause = traceback.format_exc()
        # ending while the process tears down (destroyed handles, shutdown) is not a death
        if self.context.ok() and not self.stopping.is_set():
            self.error = cause
            if self.on_death is not None:
                try:
                    self.on_death(cause)
                except Exception:  # the hook must not hide the original cause
                    self.error += "\non_death hook failed:\n" + traceback.format_exc()
        self._ended.set()

    def wait(self, seconds: float = 0.0, poll: float = 0.1) -> None:
        """Block until the context stops, ``seconds`` pass (0 = forever) or the executor dies."""
        deadline = time.monotonic() + seconds if seconds > 0 else None
        while self.context.ok() and not self._ended.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return
            self._ended.wait(poll)


def shut_down(context: Any, executor: Any, nodes: list[Any], policy_node: Any = None) -> None:
    """Tear down an in-process bring-up in the one safe order.

    The policy node deactivates first, while the executor still runs, so its hold is the last
    command; then the executor stops, the nodes are destroyed in the given order (the policy
    node joins its solver thread there) and the context shuts down.
    """
    import rclpy

    if policy_node is not None and getattr(policy_node, "lifecycle_state", "") == "active":
        policy_node.trigger_deactivate()
    if executor is not None:
        executor.shutdown(timeout_sec=2.0)
    for n in nodes:
        n.destroy_node()
    if context.ok():
        rclpy.shutdown(context=context)


def run_single_node(make_node: Callable[[], Any], args: list[str] | None = None,
                    release: Callable[[Any], None] | None = None) -> int:
    """``ros2 run`` entry of a plain node: init, spin one node until Ctrl-C or SIGTERM, tear down.

    ``release(node)`` frees what the node owns beyond ROS (a simulator) before it is destroyed. A
    callback that raises while the context is still up is a real error and propagates; one that
    raises because SIGTERM shut the context down mid-publish is not a failure.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    ensure_ament_prefix()
    rclpy.init(args=args)  # discovery as the caller's environment says (a real ROS install)
    node = None
    try:
        node = make_node()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            if release is not None:
                release(node)
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def policy_hold_on_death(policy_node: Any, logger: Any) -> Callable[[str], None]:
    """The ``on_death`` hook of a process that hosts the policy node: log, then hold."""
    def hook(error: str) -> None:
        logger.error(f"executor stopped; holding and exiting:\n{error}")
        if policy_node is not None and getattr(policy_node, "lifecycle_state", "") == "active":
            policy_node.emergency_hold("executor stopped")
    return hook


def make_executor(kind: str, context: Any, threads: int = 4) -> Any:
    """The executor a bring-up spins its nodes on (``executor`` in config/policy.yaml).

    ``single_threaded`` (the default): rclpy's SingleThreadedExecutor. Callbacks run one at a
    time on one thread; the async solver has its own. On 2 cores it held 20 Hz with an e2e p99
    of 23 ms where the multi-threaded pool reached 190-380 ms (bench/node_latency.py,
    docs/policy_node.md "Executor"): four pool threads rebuilding wait sets in Python took more
    than half of the interpreter's time from the solver. ``multi_threaded``: the Python
    MultiThreadedExecutor with ``threads`` workers (the behaviour before; kept to compare).
    rclpy's experimental EventsExecutor was tried and is not offered: it has no guard
    conditions (the node's wake-up), and it deadlocked when the autostart thread created the
    node's entities while it spun.
    """
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

    if kind == "single_threaded":
        return SingleThreadedExecutor(context=context)
    if kind == "multi_threaded":
        return MultiThreadedExecutor(num_threads=threads, context=context)
    raise ValueError(f"executor: expected single_threaded or multi_threaded, got {kind!r}")


class InProcess:
    """Context, nodes and a supervised executor (``make_executor``), torn down in ``shut_down``
    order.

    ``make_nodes(context)`` returns the nodes to spin; ``policy_node`` (one of them, optional)
    gets the hold-on-death hook and the deactivate-first teardown.

        with InProcess(lambda ctx: [PolicyNode(context=ctx)], threads=4) as run:
            run.nodes[0].trigger_configure()
            run.spin.wait(10.0)
    """

    def __init__(self, make_nodes: Callable[[Any], list[Any]], threads: int = 4,
                 policy_node: Callable[[list[Any]], Any] | None = None,
                 init_args: list[str] | None = None, allow_network: bool = False,
                 executor: str = "single_threaded") -> None:
        self._make_nodes = make_nodes
        self._executor_kind = executor
        self._allow_network = allow_network
        self._threads = threads
        self._pick_policy = policy_node
        self._init_args = init_args
        self.context: Any = None
        self.executor: Any = None
        self.nodes: list[Any] = []
        self.policy_node: Any = None
        self.spin: SupervisedSpin | None = None

    def __enter__(self) -> InProcess:
        import rclpy
        from rclpy.context import Context

        require_loopback(self._allow_network)
        self.context = Context()
        rclpy.init(args=self._init_args, context=self.context)
        try:
            self.nodes = list(self._make_nodes(self.context))
            self.policy_node = self._pick_policy(self.nodes) if self._pick_policy else None
            self.executor = make_executor(self._executor_kind, self.context, self._threads)
            for n in self.nodes:
                self.executor.add_node(n)
            logger = rclpy.logging.get_logger("runtime")
            self.spin = SupervisedSpin(self.executor, self.context,
                                       policy_hold_on_death(self.policy_node, logger)).start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.spin is not None:
            self.spin.stopping.set()
        shut_down(self.context, self.executor, list(self.nodes), policy_node=self.policy_node)
