"""Defaults that compose (issue #19, item 7): what one command writes, the next one reads, with no
flags but the required ones; and bring-up with the sim moves the robot with policy actions."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vla_eqm_train.cli import main as vla_eqm


def test_record_then_eval_bag_with_default_flags_only(tmp_path, capsys) -> None:
    bags = tmp_path / "bags"
    assert vla_eqm(["record", "--tasks", "button-press-topdown-v3", "--episodes", "1",
                    "--max-attempts", "1", "--max-steps", "24", "--out", str(bags),
                    "--no-progress"]) == 0
    recorded = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert recorded["episodes"] == 1, recorded
    out = tmp_path / "report"
    assert vla_eqm(["eval-bag", "--bags", str(bags), "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and report["bags"]["ok"] == 1, report["bags"]


@pytest.mark.timeout(180)
def test_bringup_with_the_sim_commands_policy_actions_within_seconds(ros_env, tmp_path) -> None:
    """The shipped YAMLs only: the bridge publishes the cameras the checkpoint's contract asks
    for, on one of its tasks, and the node's commands are policy actions, not holds."""
    probe = tmp_path / "probe.py"
    probe.write_text('''
import sys, time, threading
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import Float64MultiArray
ctx = Context(); rclpy.init(context=ctx)
node = rclpy.create_node("probe", context=ctx)
got = []
node.create_subscription(Float64MultiArray, "/command", lambda m: got.append(list(m.data)), 50)
ex = SingleThreadedExecutor(context=ctx); ex.add_node(node)
deadline = time.monotonic() + 120
while time.monotonic() < deadline and sum(c[:3] != [0.0, 0.0, 0.0] for c in got) < 10:
    ex.spin_once(timeout_sec=0.1)
print(sum(c[:3] != [0.0, 0.0, 0.0] for c in got), len(got))
''')
    node = subprocess.Popen([sys.executable, "-c",
                             "from vla_eqm_ros.nodes.bringup import main; main()",
                             "--with-sim", "--seconds", "150"], env=ros_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        out = subprocess.run([sys.executable, str(probe)], env=ros_env, capture_output=True,
                             text=True, timeout=150)
    finally:
        node.terminate()
        _, err = node.communicate(timeout=30)
    policy, total = (int(v) for v in out.stdout.split())
    assert policy >= 10, f"{policy} policy commands of {total}; node log:\n{err[-3000:]}"
    assert "missing: gripperPOV" not in err
