"""Bag size per episode: raw ``sensor_msgs/Image`` against ``CompressedImage`` JPEG and PNG.

One scripted pick-place-v3 episode (two cameras, corner and gripperPOV) is recorded through the
sim bridge at each ``--sizes`` (square, pixels; 480 is the height of a 640x480 camera) with
``vla-eqm record``, into ``--data`` (regenerated when missing). Each bag is rewritten with every
camera frame as a CompressedImage (``rgb8; jpeg compressed bgr8`` at ``--jpeg-quality``, and
``rgb8; png compressed bgr8``), as image_transport would have published it; everything else is
copied byte for byte. Prints one JSON object: per size and codec the bag bytes, bytes per
episode step, the ratio to raw, and the pixel error of the decoded frames against the raw ones
(mean and max absolute, 0..255), decoded with ``vla_eqm_ros.images`` (the node's decoder).

    python bench/bag_size.py [--sizes 96 480] [--jpeg-quality 90] [--data ~/vla_data/bench_bags]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 200))
TASK = "pick-place-v3"


def bag_bytes(bag: Path) -> int:
    return sum(p.stat().st_size for p in bag.rglob("*") if p.is_file())


def record(size: int, data: Path) -> Path:
    """One expert episode at ``size`` px, recorded once and reused."""
    out = data / f"raw_{size}"
    bags = sorted(p for p in out.glob("*") if (p / "metadata.yaml").is_file())
    if bags:
        return bags[0]
    import contextlib

    from vla_eqm_train.cli import main as vla_eqm

    with contextlib.redirect_stdout(sys.stderr):  # stdout carries this bench's JSON only
        rc = vla_eqm(["record", "--tasks", TASK, "--episodes", "1", "--out", str(out),
                      "--cameras", "corner", "gripperPOV", "--image-size", str(size),
                      "--no-progress"])
    assert rc == 0, f"vla-eqm record exited {rc}"
    return sorted(p for p in out.glob("*") if (p / "metadata.yaml").is_file())[0]


def compress(src: Path, dst: Path, codec: str, quality: int) -> dict:
    """Rewrite ``src`` with CompressedImage cameras; returns bytes and the pixel error."""
    import shutil

    from rosbags.rosbag2 import Reader, StoragePlugin, Writer

    from vla_eqm_ros.images import decode_compressed, encode_compressed
    from vla_eqm_sim.bag_types import make_typestore

    store = make_typestore()
    T = store.types
    errors: list[np.ndarray] = []
    steps = 0
    shutil.rmtree(dst, ignore_errors=True)
    with Reader(src) as reader, Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {}
        for c in reader.connections:
            image = c.msgtype == "sensor_msgs/msg/Image"
            conns[c.id] = w.add_connection(
                c.topic + ("/compressed" if image else ""),
                "sensor_msgs/msg/CompressedImage" if image else c.msgtype, typestore=store,
                offered_qos_profiles=c.ext.offered_qos_profiles)
        for c, t_ns, raw in reader.messages():
            if c.msgtype != "sensor_msgs/msg/Image":
                w.write(conns[c.id], t_ns, raw)
                steps += c.topic == "/episode_status"
                continue
            msg = store.deserialize_cdr(raw, c.msgtype)
            pixels = np.asarray(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
            fmt = f"rgb8; {codec} compressed bgr8"
            data = encode_compressed(pixels, codec, quality=quality)
            out = T["sensor_msgs/msg/CompressedImage"](header=msg.header, format=fmt,
                                                       data=np.frombuffer(data, np.uint8))
            w.write(conns[c.id], t_ns, store.serialize_cdr(out, out.__msgtype__))
            back = decode_compressed(data, fmt)
            errors.append(np.abs(back.astype(np.int16) - pixels.astype(np.int16)))
    err = np.concatenate([e.reshape(-1) for e in errors])
    return {"bytes": bag_bytes(dst), "frames": len(errors), "steps": steps,
            "pixel_mae": round(float(err.mean()), 3), "pixel_max_abs": int(err.max())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[96, 480])
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--data", type=Path, default=Path("~/vla_data/bench_bags").expanduser())
    args = p.parse_args(argv)
    result: dict = {"task": TASK, "cameras": ["corner", "gripperPOV"],
                    "jpeg_quality": args.jpeg_quality, "sizes": {}}
    for size in args.sizes:
        raw = record(size, args.data)
        raw_bytes = bag_bytes(raw)
        entry: dict = {"raw": {"bytes": raw_bytes}}
        for codec in ("jpeg", "png"):
            c = compress(raw, args.data / f"{codec}_{size}" / raw.name, codec, args.jpeg_quality)
            c["ratio_to_raw"] = round(c["bytes"] / raw_bytes, 4)
            entry[codec] = c
        steps = max(1, entry["jpeg"]["steps"])
        for codec in ("raw", "jpeg", "png"):
            entry[codec]["bytes_per_step"] = round(entry[codec]["bytes"] / steps)
            entry[codec]["mb_per_episode"] = round(entry[codec]["bytes"] / 1e6, 3)
        entry["steps"] = steps
        result["sizes"][f"{size}x{size}"] = entry
        print(f"[bag_size] {size}px: raw {raw_bytes / 1e6:.2f} MB, jpeg "
              f"{entry['jpeg']['bytes'] / 1e6:.2f} MB, png {entry['png']['bytes'] / 1e6:.2f} MB "
              f"({steps} steps)", file=sys.stderr)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
