"""The `bringup` entry point as a user runs it: its own process, loopback DDS, autostart, Ctrl-C.

This is the part of `ros2 launch vla_eqm_ros policy.launch.py` that runs without a ROS install:
config/policy.yaml, configure + activate, commands out; SIGINT deactivates (hold) and exits 0.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from policy_node_harness import Harness, build_checkpoint, is_hold


def _ctrl_c_enabled() -> None:
    """The child gets SIGINT as a terminal delivers it. A shell without job control (a CI
    runner's background job, ``nohup ... &``) starts children with SIGINT ignored, and an
    ignored SIGINT stays ignored across exec: the node would never see this test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_bringup_autostarts_commands_and_exits_cleanly_on_sigint(ros_env, tmp_path) -> None:
    ckpt = build_checkpoint(tmp_path / "ckpt")
    # The harness is the robot here; its own policy node stays unconfigured (silent) and is
    # renamed so the two nodes do not share a name.
    io = Harness({"checkpoint": str(ckpt)}, node_name="unused_policy_node")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from vla_eqm_ros.nodes.bringup import main; main()",
         "--checkpoint", str(ckpt), "--param", "execute_steps:=2"],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_ctrl_c_enabled)
    try:
        io.publish_goal("press the button")
        io.start_stream()
        assert io.wait_for(lambda: sum(not is_hold(m) for m in io.commands_since(0.0)) >= 5,
                           timeout=90), "no policy command from bringup"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        # the hold left before the process exited; let this process's executor take it in
        io.wait_for(lambda: is_hold(io.commands_since(0.0)[-1]), timeout=5.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        io.close()
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "autostart: active" in err + out
    time.sleep(0.1)
    last = io.commands_since(0.0)[-1]
    assert is_hold(last), "the last command before exit is the deactivation hold"
