"""Policy-node latency benchmark: sensor-to-command time of the live node over loopback DDS.

Two processes on one private ROS domain (loopback only): this one plays the robot, publishing a
camera image and a joint state at ``--rate`` Hz (header stamp = send time, wall clock), and times
the command topic; the other runs the policy node through the ``bringup`` entry point (autostart).

e2e: publish time of an observation (its header stamp) -> receipt of the command it caused. With
``trigger: observation`` (default) each observation causes exactly one command, in order, so the
k-th command after an alignment gap answers the k-th observation after it (exact while the node
drops no cycle). When cycles were dropped that pairing is inexact, and e2e is the node's own
measurement (observation stamp -> command publish, same wall clock) over the whole window: the
bench sets ``diagnostics_window`` to the window's size. ``e2e_definition`` says which was used;
``node_e2e_ms_*`` is always the node's figure, next to its split into ``node_transport_ms_*``
(stamp -> subscription callback) and ``node_dispatch_ms_*`` (callback -> cycle start);
``robot_publish_lag_ms_*`` is this harness's own share of the transport (stamp -> the frame's last
message handed to DDS). With
``--trigger timer`` a command answers the timer, not a frame, so e2e is the node's figure.

The node's loop runs at the camera rate (``control_rate_hz`` = ``--rate`` unless
``--control-rate``): the checkpoint's 80 Hz is its simulator's control period, and under the
observation trigger the control timer is only the stale-input watchdog. ``--execution`` picks
sync (solve, then execute) or async (solve while executing); the default is the node's (sync).

Checkpoint: ``--checkpoint``, else the shipped ``default_eqm`` when it exists, else the ``default``
preset with random weights (``checkpoint`` says which). Random weights never reach tau, so every
solve runs to k_max; ``--k-max`` sets the node's solver to a trained model's depth, and the JSON
says so (``solver_override``).

Real camera sizes: ``--camera-size 640x480`` publishes every camera at that size (a textured
frame, not noise) and the node resizes it to the model's input (the contract's ``resize: true``,
given to the node as a ``contract`` override); ``--compressed`` publishes
``sensor_msgs/CompressedImage`` JPEG (OpenCV, quality 90) on ``<topic>/compressed`` as
image_transport does, so the node decodes, then resizes. The JSON names both (``camera_size``,
``camera_transport``, ``jpeg_bytes``).

    python bench/node_latency.py [--seconds 120] [--execution sync|async] [--rate 20]
                                 [--trigger observation|timer] [--k-max N] [--execute-steps N]
                                 [--checkpoint DIR] [--control-rate HZ] [--param NAME:=VALUE]
                                 [--camera-size WxH] [--compressed]
                                 [--executor single_threaded|multi_threaded]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for pkg in ("vla_eqm_ros", "vla_eqm_sim", "vla_eqm_train"):
    sys.path.insert(0, str(ROOT / pkg))

from vla_eqm_ros.waiting import wait_until  # noqa: E402  (the source tree, put on the path above)

JOINTS = ["j0", "j1", "j2", "j3"]
ALIGN_GAP_S = 0.15  # pause before the window: in-flight answers land, FIFO starts clean


def log(msg: str) -> None:
    print(f"[node_latency] {msg}", file=sys.stderr, flush=True)


def resolve_checkpoint(arg: str | None, workdir: Path) -> tuple[Path, str]:
    """(directory, label): explicit > shipped default > random-init default preset."""
    from vla_eqm_ros.policy import DEFAULT_CHECKPOINT

    if arg:
        return Path(arg), f"given: {arg}"
    if (DEFAULT_CHECKPOINT / "config.yaml").is_file():
        return DEFAULT_CHECKPOINT, "shipped default_eqm"
    from vla_eqm_ros.checkpoint import save_checkpoint
    from vla_eqm_ros.config import get_preset
    from vla_eqm_ros.contract import Contract
    from vla_eqm_ros.model import PI0EqMModel

    cfg = get_preset("default")
    cams = [(c.name, c.height, c.width) for c in cfg.model.cameras]
    contract = Contract.default_for(cams, JOINTS, ["dx", "dy", "dz", "gripper"],
                                    cfg.control_period)
    cfg = cfg.replace(contract=contract.to_dict(), state_names=tuple(JOINTS),
                      action_names=("dx", "dy", "dz", "gripper"))
    path = save_checkpoint(workdir / "default_random", PI0EqMModel(cfg), cfg)
    return Path(path), "default preset, random weights (shipped default_eqm not present)"


class Robot:
    """The publishing/timing side: inputs at a fixed rate, every output recorded with its time."""

    def __init__(self, contract, rate_hz: float, size: tuple[int, int] | None = None,
                 compressed: bool = False) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from rclpy.qos import qos_profile_sensor_data as sensor_qos
        from sensor_msgs.msg import CompressedImage, Image, JointState
        from std_msgs.msg import Float64MultiArray, String

        from vla_eqm_msgs.msg import DecoderStatus

        # This process stands in for camera and joint drivers, which on a robot are C++ nodes.
        # Its publisher thread shares the GIL with its executor thread; at Python's default 5 ms
        # switch interval a frame could leave tens of ms after its stamp, charged to the node.
        # publish_lag_ms (stamp -> last message of the frame handed to DDS) shows what is left.
        sys.setswitchinterval(0.0005)
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("bench_robot", context=self.context)
        # every input the contract names: each camera, each state source (joint state or pose)
        self.rate_hz = rate_hz
        self.compressed = compressed
        self.cams = [(c, self.node.create_publisher(CompressedImage if compressed else Image,
                                                    c.topic, sensor_qos))
                     for c in contract.cameras]
        msg_type = {"joint_state": JointState, "pose": PoseStamped}
        self.states = [(st, self.node.create_publisher(msg_type[st.type], st.topic, 10))
                       for st in contract.state]
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_publisher(String, contract.goal.topic, latched).publish(
            String(data="press the button"))
        self.lock = threading.Lock()
        self.sent: list[float] = []  # observation stamps, s (= send time)
        self.commands: list[float] = []  # receipt times, s
        self.iterations: list[tuple[float, int]] = []
        self.solve_e2e: list[tuple[float, float]] = []  # (observation stamp, ms to status receipt)
        self.diag: list[tuple[float, dict[str, str]]] = []
        self.node.create_subscription(Float64MultiArray, contract.action.topic,
                                      self._on_command, 100)
        self.node.create_subscription(DecoderStatus, "/policy_node/decoder_status",
                                      self._on_status, 100)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self._sizes = {c.name: size or (c.width, c.height) for c in contract.cameras}
        self._frames = {c.name: camera_frame(*self._sizes[c.name], seed=i, jpeg=compressed)
                        for i, c in enumerate(contract.cameras)}
        self._Image, self._JointState, self._PoseStamped = Image, JointState, PoseStamped
        self._CompressedImage = CompressedImage
        self.publishing = threading.Event()
        self.publish_lag: list[tuple[float, float]] = []  # (stamp, ms to the frame's last publish)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        threading.Thread(target=self._publish_loop, daemon=True).start()

    def _on_command(self, _msg) -> None:
        t = time.time()
        with self.lock:
            self.commands.append(t)

    def _on_status(self, msg) -> None:
        t = time.time()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self.lock:
            self.iterations.append((t, int(msg.iterations)))
            self.solve_e2e.append((stamp, (t - stamp) * 1e3))

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith("policy_node"):
                with self.lock:
                    self.diag.append((time.time(), {kv.key: kv.value for kv in status.values}))

    def _publish_loop(self) -> None:
        """Fixed-rate schedule on the wall clock (absolute deadlines: no drift)."""
        period = 1.0 / self.rate_hz
        next_t = time.time()
        while self.context.ok():
            next_t += period
            if self.publishing.is_set():
                now_ns = time.time_ns()
                for st, pub in self.states:
                    if st.type == "joint_state":
                        msg = self._JointState(name=list(st.names),
                                               position=[0.1] * len(st.names))
                    else:
                        msg = self._PoseStamped()
                        msg.pose.position.y, msg.pose.orientation.w = 0.6, 1.0
                    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 10**9)
                    pub.publish(msg)
                for cam, pub in self.cams:  # images last: the reference input completes the set
                    w, h = self._sizes[cam.name]
                    if self.compressed:
                        img = self._CompressedImage(format="rgb8; jpeg compressed bgr8",
                                                    data=self._frames[cam.name])
                    else:
                        img = self._Image(height=h, width=w, encoding="rgb8", step=w * 3,
                                          data=self._frames[cam.name])
                    img.header.stamp.sec, img.header.stamp.nanosec = divmod(now_ns, 10**9)
                    pub.publish(img)
                lag_ms = (time.time_ns() - now_ns) * 1e-6
                with self.lock:
                    self.sent.append(now_ns * 1e-9)
                    self.publish_lag.append((now_ns * 1e-9, lag_ms))
            time.sleep(max(0.0, next_t - time.time()))

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)


def camera_frame(width: int, height: int, seed: int, jpeg: bool) -> bytes:
    """A textured RGB frame (gradients, a block, mild noise: JPEG sizes like a real scene's),
    raw or as JPEG bytes."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1),
                    np.full_like(x, 60 + 50 * seed)], -1).astype(np.int16)
    img[height // 3: height // 2, width // 4: width // 2] = (200, 40, 40)
    img += np.random.default_rng(seed).integers(-6, 7, img.shape, dtype=np.int16)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if not jpeg:
        return img.tobytes()
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def camera_contract(contract, size: tuple[int, int] | None, compressed: bool, path: Path):
    """The checkpoint's contract with every camera resized (and compressed): the node's override."""
    from vla_eqm_ros.contract import Contract

    d = contract.to_dict()
    for cam in d["cameras"]:
        cam["resize"] = bool(size) or cam.get("resize", False)
        if compressed:
            cam.update(transport="compressed", topic=cam["topic"].rstrip("/") + "/compressed")
    Contract.from_dict(d).to_yaml(path)
    return Contract.from_yaml(path)


def pct(xs, q: float) -> float:
    return round(float(np.percentile(xs, q)), 2) if len(xs) else float("nan")


def measure(robot: Robot, seconds: float, trigger: str) -> dict:
    """Warm up, align, run the window; the JSON fields of one run."""
    time.sleep(3.0)  # warm-up: first decodes, DDS discovery settled
    robot.publishing.clear()
    time.sleep(ALIGN_GAP_S)
    # alignment: wait until every observation sent so far was answered (quiet for a gap)
    quiet = lambda: time.time() - (robot.commands[-1] if robot.commands else 0) > ALIGN_GAP_S  # noqa: E731
    wait_until(quiet, timeout=0.8, poll=0.05)
    with robot.lock:
        diag0 = robot.diag[-1][1] if robot.diag else {}
        n_cmd0 = len(robot.commands)
    t0 = time.time()
    robot.publishing.set()
    log(f"measuring {seconds:.0f} s ({trigger} trigger)")
    time.sleep(seconds)
    with robot.lock:  # the node's figures while fed (after the stop it would age stale inputs)
        diag1 = robot.diag[-1][1] if robot.diag else {}
    robot.publishing.clear()
    time.sleep(1.0)  # answers in flight land
    t1 = t0 + seconds
    with robot.lock:
        sent = [s for s in robot.sent if t0 <= s <= t1]
        cmds = robot.commands[n_cmd0:]
        iters = [k for t, k in robot.iterations if t0 <= t <= t1 + 1.0]
    in_window = [c for c in cmds if c <= t1 + 0.5]
    dropped = int(diag1.get("dropped_cycles", "0")) - int(diag0.get("dropped_cycles", "0"))
    out = {"rate_hz": round(len([c for c in cmds if c <= t1]) / seconds, 2),
           "iters_p50": float(np.median(iters)) if iters else float("nan"),
           "dropped_cycles": dropped, "observations": len(sent), "commands": len(in_window)}
    with robot.lock:
        solve_e2e = [ms for stamp, ms in robot.solve_e2e  # fed window only (received by t1)
                     if t0 <= stamp and stamp + ms / 1e3 <= t1]
    out.update(solve_e2e_ms_p50=pct(solve_e2e, 50), solve_e2e_ms_p99=pct(solve_e2e, 99))
    with robot.lock:
        lag = [ms for stamp, ms in robot.publish_lag if t0 <= stamp <= t1]
    out.update(robot_publish_lag_ms_p50=pct(lag, 50), robot_publish_lag_ms_p99=pct(lag, 99))
    node_e2e = {q: float(diag1.get(f"sensor_to_command_ms_p{q}", "nan")) for q in (50, 99)}
    if trigger == "observation":
        n = min(len(sent), len(in_window))
        fifo = (np.asarray(in_window[:n]) - np.asarray(sent[:n])) * 1e3
        exact = bool(dropped == 0 and len(in_window) == len(sent))
        if exact:
            out.update(e2e_ms_p50=pct(fifo, 50), e2e_ms_p99=pct(fifo, 99),
                       e2e_ms_max=round(float(fifo.max()), 2) if len(fifo) else float("nan"),
                       e2e_definition="observation stamp -> command receipt, every command "
                                      "(FIFO pairing, exact: no dropped cycle)")
        else:
            out.update(e2e_ms_p50=node_e2e[50], e2e_ms_p99=node_e2e[99],
                       e2e_definition="node-measured (dropped cycles make the FIFO pairing "
                                      "inexact): observation stamp -> command publish, every "
                                      "command of the window (diagnostics_window = its size)")
        out["fifo_exact"] = exact
    else:
        out.update(e2e_ms_p50=node_e2e[50], e2e_ms_p99=node_e2e[99],
                   e2e_definition="node-measured: observation stamp -> command publish, every "
                                  "command of the window (timer trigger)")
    # the node's own figure (stamp -> publish, last 200 commands): the cross-check, and the
    # one to read when dropped cycles make the FIFO pairing inexact
    out["node_e2e_ms_p50"], out["node_e2e_ms_p99"] = node_e2e[50], node_e2e[99]
    for key in ("transport_ms_p50", "transport_ms_p99", "dispatch_ms_p50", "dispatch_ms_p99",
                "solve_ms_p99", "boundary_jump_p50", "boundary_jump_max"):
        out[f"node_{key}"] = float(diag1.get(key, "nan"))
    out["node_cycle_ms_p99"] = float(diag1.get("cycle_ms_p99", "nan"))
    out["node_solve_ms_p50"] = float(diag1.get("solve_ms_p50", "nan"))
    out["node_holds"] = int(diag1.get("holds", "0")) - int(diag0.get("holds", "0"))
    out["node_last_hold_reason"] = diag1.get("last_hold_reason", "")
    return out


def build_parser(description: str) -> argparse.ArgumentParser:
    """The options every node bench shares (this one and node_soak.py)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seconds", type=float, default=120.0, help="measurement window, s")
    p.add_argument("--trigger", choices=("observation", "timer"), default="observation")
    p.add_argument("--k-max", type=int, default=0, help="override the node's k_max (0 = ckpt)")
    p.add_argument("--execute-steps", type=int, default=0, help="0 = the checkpoint's")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--rate", type=float, default=20.0, help="observation rate, Hz")
    p.add_argument("--control-rate", type=float, default=0.0,
                   help="the node's control_rate_hz (0 = --rate: the loop runs at the camera "
                        "rate; the checkpoint's 80 Hz is its simulator's control period)")
    p.add_argument("--execution", choices=("sync", "async"), default=None,
                   help="the node's execution mode (default: config/policy.yaml's)")
    p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                   help="extra node parameter, repeatable (e.g. gil_switch_interval_ms:=5)")
    p.add_argument("--executor", choices=("single_threaded", "multi_threaded"),
                   default=None, help="the node process's executor (default: the YAML's)")
    p.add_argument("--camera-size", default=None, metavar="WxH",
                   help="publish cameras at this size; the node resizes (e.g. 640x480)")
    p.add_argument("--compressed", action="store_true",
                   help="publish CompressedImage JPEG on <topic>/compressed")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser(__doc__.split("\n\n")[0]).parse_args(argv)
    result = run_bench(args, lambda robot, node: measure(robot, args.seconds, args.trigger))
    print(json.dumps(result, indent=2))
    return 0


def run_bench(args: argparse.Namespace, measure_fn) -> dict:
    """Start the robot and the node, ``measure_fn(robot, node_process)`` once the node decodes,
    stop both; the JSON fields of the run (the settings plus what ``measure_fn`` returned)."""
    size = None
    if args.camera_size:
        try:
            w, h = (int(v) for v in args.camera_size.lower().split("x"))
        except ValueError:
            raise SystemExit(f"--camera-size: expected WxH such as 640x480, got "
                             f"{args.camera_size!r}") from None
        size = (w, h)

    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # loopback only, always
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 200))
    if os.environ["ROS_DOMAIN_ID"] == "0":
        os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 200)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / pkg) for pkg in ("vla_eqm_ros", "vla_eqm_sim", "vla_eqm_train")]
        + [os.environ.get("PYTHONPATH", "")])}

    from vla_eqm_ros.checkpoint import load_checkpoint
    from vla_eqm_ros.compat import resolve_contract

    with tempfile.TemporaryDirectory() as tmp:
        ckpt, label = resolve_checkpoint(args.checkpoint, Path(tmp))
        cfg, _ = load_checkpoint(ckpt)
        contract = resolve_contract(cfg, "")
        override = []
        if size or args.compressed:
            contract = camera_contract(contract, size, args.compressed, Path(tmp) / "c.yaml")
            override = [f"contract:={Path(tmp) / 'c.yaml'}"]
        # max ages of 1 s: the alignment pause must not read as stale input (holds)
        params = [f"trigger:={args.trigger}", "camera_max_age:=1.0", "state_max_age:=1.0",
                  f"control_rate_hz:={float(args.control_rate or args.rate)}",
                  # the node's percentiles cover the measurement window, not the last 200 cycles:
                  # 95 % of its cycles, so that the 1 Hz diagnostics never reach back into the
                  # unfed alignment pause before it
                  f"diagnostics_window:={max(10, int(0.95 * args.seconds * args.rate))}"]
        if args.k_max:
            params.append(f"k_max:={args.k_max}")
        if args.execute_steps:
            params.append(f"execute_steps:={args.execute_steps}")
        if args.execution:
            params.append(f"execution:={args.execution}")
        params += override + args.param
        cmd = [sys.executable, "-c", "from vla_eqm_ros.nodes.bringup import main; main()",
               "--checkpoint", str(ckpt)] + [a for prm in params for a in ("--param", prm)]
        if args.executor:
            cmd += ["--executor", args.executor]
        log(f"checkpoint: {label}; node: {' '.join(params)}; domain {env['ROS_DOMAIN_ID']}")
        robot = Robot(contract, args.rate, size, args.compressed)
        jpeg_bytes = ({c: len(f) for c, f in robot._frames.items()} if args.compressed
                      else None)
        robot.publishing.set()
        # the node's log goes to a file, never an undrained pipe: a full pipe blocks the node's
        # logging calls and would stall it (a measured artefact, not the node's latency)
        node_log = Path(tmp) / "policy_node.log"
        with open(node_log, "w") as log_file:
            # SIGINT as from a terminal, also when this bench runs as a background job (whose
            # children start with SIGINT ignored): the stop below must reach the node
            node = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log_file,
                                    text=True, preexec_fn=lambda: signal.signal(
                                        signal.SIGINT, signal.SIG_DFL))
            decoded = False
            try:
                wait_until(lambda: len(robot.iterations) > 0 or node.poll() is not None,
                           timeout=180, poll=0.05)
                decoded = len(robot.iterations) > 0
                if decoded:
                    run = measure_fn(robot, node)
            finally:
                node.send_signal(signal.SIGINT)
                try:
                    node.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    node.kill()
                    node.wait()
                robot.close()
        err = node_log.read_text(errors="replace")
        run_log_lines = err.count("\n")
        if node.returncode != 0 or not decoded:
            log(f"node exited {node.returncode}; its log ends with:\n{err[-3000:]}")
        if not decoded:
            raise SystemExit("the node never decoded within 180 s (its log is above)")
    result = {
        "checkpoint": label,
        "trigger": args.trigger,
        "solver_override": {"k_max": args.k_max} if args.k_max else None,
        "k_max": args.k_max or cfg.solver.k_max,
        "tau": cfg.solver.tau,
        "execute_steps": args.execute_steps or cfg.execute_steps,
        "execution": args.execution or "sync (node default)",
        "executor": args.executor or "the YAML's (config/policy.yaml)",
        "control_rate_hz": float(args.control_rate or args.rate),
        "node_params": params,
        "seconds": args.seconds,
        "target_rate_hz": args.rate,
        "camera_size": args.camera_size or "model size (no resize)",
        "camera_transport": "compressed (JPEG q90)" if args.compressed else "raw",
        "jpeg_bytes": jpeg_bytes,
        **run,
        "node_log_lines": run_log_lines,
        "machine": f"{os.cpu_count()} CPU cores shared with other jobs; load average "
                   f"{os.getloadavg()[0]:.1f} at the end",
    }
    return result


if __name__ == "__main__":
    sys.exit(main())
