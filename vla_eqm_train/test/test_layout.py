"""The training package's layout: data/ and training/ are ROS-free, commands are one per module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "vla_eqm_train"

SCRIPT = """
import importlib, pkgutil, sys
sys.modules['rclpy'] = None  # any 'import rclpy' now raises ImportError
import vla_eqm_train.data, vla_eqm_train.training
for pkg in (vla_eqm_train.data, vla_eqm_train.training):
    for mod in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f'{pkg.__name__}.{mod.name}')
loaded = {m for m in sys.modules if sys.modules[m] is not None}
assert not any(m == 'rclpy' or m.startswith('rclpy.') for m in loaded), 'rclpy was imported'
print('ok')
"""


def test_data_and_training_import_without_rclpy(ros_env) -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=ros_env, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


def test_every_cli_subcommand_has_its_own_commands_module() -> None:
    from vla_eqm_train.cli import SUBCOMMANDS

    for name, (module, _help) in SUBCOMMANDS.items():
        if module.startswith("vla_eqm_train."):
            assert module == f"vla_eqm_train.commands.{name.replace('-', '_')}", name


def test_no_module_over_about_400_lines() -> None:
    roots = [PKG, PKG.parents[1] / "vla_eqm_ros" / "vla_eqm_ros"]
    long = {str(p.relative_to(PKG.parents[1])): n for root in roots for p in root.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 420}
    assert not long, long
