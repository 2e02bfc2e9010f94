"""Fixtures for the eval-bag tests: sim-recorded bags, a matching debug checkpoint, bag surgery.

Bags are recorded by the real sim bridge (``vla-eqm record``, Meta-World, 32 px corner camera,
a dozen steps: a few seconds). The checkpoint is the ``debug`` preset, untrained, with the
Meta-World contract of ``vla_eqm_train`` narrowed to that camera, so every bag decodes through the
shared decode path exactly as a real one. ``copy_bag`` rewrites a bag with rosbags (dropping
topics or messages) to make the broken inputs the error tests need.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from vla_eqm_ros.checkpoint import save_checkpoint
from vla_eqm_ros.config import CameraConfig, SolverConfig, get_preset
from vla_eqm_ros.contract import Contract
from vla_eqm_ros.model import PI0EqMModel
from vla_eqm_sim.bag_types import make_typestore
from vla_eqm_train.cli import main as vla_eqm
from vla_eqm_train.commands.dataset import DEFAULT_CONTRACT

TASK = "button-press-topdown-v3"
SIZE = 32
K_MAX = 20


def contract_dict(size: int = SIZE) -> dict:
    contract = yaml.safe_load(DEFAULT_CONTRACT.read_text())
    contract["cameras"] = [{**contract["cameras"][0], "height": size, "width": size}]
    return contract


def record_bags(out: Path, episodes: int = 2, steps: int = 12) -> list[Path]:
    """``episodes`` expert episodes of ``steps`` steps recorded through the sim bridge."""
    assert vla_eqm(["record", "--tasks", TASK, "--episodes", str(episodes),
                    "--max-attempts", str(episodes), "--out", str(out),
                    "--cameras", "corner", "--image-size", str(SIZE), "--max-steps", str(steps),
                    "--no-progress"]) == 0
    return sorted(p for p in out.iterdir() if (p / "metadata.yaml").is_file())


def debug_checkpoint(directory: Path, decoder: str = "eqm", state_dim: int = 5) -> Path:
    """An untrained debug-preset checkpoint whose contract matches ``record_bags``' bags."""
    cfg = get_preset("debug")
    cfg = cfg.replace(
        model=dataclasses.replace(cfg.model, state_dim=state_dim,
                                  cameras=(CameraConfig("corner", SIZE, SIZE),)),
        decoder=decoder, solver=SolverConfig(k_max=K_MAX),
        contract=Contract.from_dict(contract_dict()).to_dict(), control_period=0.0125)
    return save_checkpoint(directory, PI0EqMModel(cfg), cfg)


def copy_bag(src: Path, dst: Path, *, drop_topics: tuple[str, ...] = (),
             max_messages: int | None = None) -> Path:
    """Rewrite ``src`` into ``dst`` without ``drop_topics`` and after ``max_messages`` messages."""
    store = make_typestore()
    with Reader(src) as reader:
        writer = Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP)
        with writer:
            conns = {}
            for c in reader.connections:
                if c.topic not in drop_topics:
                    conns[c.id] = writer.add_connection(
                        c.topic, c.msgtype, typestore=store,
                        offered_qos_profiles=c.ext.offered_qos_profiles)
            written = 0
            for c, t_ns, raw in reader.messages():
                if c.id not in conns:
                    continue
                if max_messages is not None and written >= max_messages:
                    break
                writer.write(conns[c.id], t_ns, raw)
                written += 1
    return dst


def truncate_bag(src: Path, dst: Path, keep: float = 0.5) -> Path:
    """A copy of ``src`` whose MCAP file is cut after ``keep`` of its bytes (a crashed recorder)."""
    copy_bag(src, dst)
    mcap = next(dst.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: int(len(data) * keep)])
    return dst
