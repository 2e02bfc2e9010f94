"""The ROS-free core imports and decodes with rclpy made impossible to import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CORE = ["config", "observation", "language", "vision", "backbone", "action_expert", "model",
        "objectives", "solvers", "warm_start", "normalization", "checkpoint", "policy",
        "waiting", "execution", "guard", "settings", "contract", "contract_fields", "decode",
        "compat", "images"]

SCRIPT = """
import sys
sys.modules['rclpy'] = None  # any 'import rclpy' now raises ImportError
import importlib
for name in {core!r}:
    importlib.import_module('vla_eqm_ros.' + name)
from vla_eqm_ros.config import get_preset
from vla_eqm_ros.model import PI0EqMModel
import torch
model = PI0EqMModel(get_preset('debug')).eval()
assert 'rclpy' not in {{m for m in sys.modules if sys.modules[m] is not None}}
print('ok')
"""


def test_every_core_module_imports_and_builds_a_model_without_rclpy(ros_env):
    root = Path(__file__).resolve().parents[1]
    env = {**ros_env, "PYTHONPATH": str(root) + os.pathsep + ros_env.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(core=CORE)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_no_core_source_file_mentions_an_rclpy_import():
    pkg = Path(__file__).resolve().parents[1] / "vla_eqm_ros"
    for name in CORE:
        text = (pkg / f"{name}.py").read_text()
        assert "import rclpy" not in text and "from rclpy" not in text, name
