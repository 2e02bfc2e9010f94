"""CompressedImage decoding for the policy node: OpenCV (what ships) against Pillow and simplejpeg.

One 640x480 camera frame (a rendered Meta-World view scaled up, so it compresses like a real
scene) encoded as JPEG (quality 90) and PNG, decoded and scaled to 96x96 RGB N times per library,
one thread. Prints one JSON object: per library and codec the p50 / p99 ms per frame, and the mean
absolute pixel error of the JPEG round trip against the source frame. simplejpeg is measured only
when installed (it is not a dependency; ``pip install simplejpeg`` to include it).

    python bench/image_decode.py [--frames 300]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time

import numpy as np

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


def source_frame() -> np.ndarray:
    """A real rendered scene at 640x480 (rendered at 240 px, scaled with OpenCV)."""
    import cv2

    from vla_eqm_sim.metaworld_backend import MetaWorldBackend

    backend = MetaWorldBackend(task="pick-place-v3")
    try:
        backend.reset("pick-place-v3", 0, 0)
        frame = backend.render(["corner"], (240, 240))["corner"]
    finally:
        backend.close()
    return cv2.resize(frame, (640, 480), interpolation=cv2.INTER_CUBIC)


def _time(fn, frames: int) -> tuple[list[float], np.ndarray]:
    out, times = None, []
    for _ in range(frames):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times, out


def main() -> None:
    import cv2
    from PIL import Image

    from vla_eqm_ros.images import decode_compressed, encode_compressed, fit

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=300)
    args = p.parse_args()
    cv2.setNumThreads(1)
    src = source_frame()
    blobs = {"jpeg": encode_compressed(src, "jpeg", 90), "png": encode_compressed(src, "png")}
    ref = cv2.resize(src, (96, 96), interpolation=cv2.INTER_AREA)

    def pillow(blob: bytes) -> np.ndarray:
        img = Image.open(io.BytesIO(blob)).convert("RGB")
        return np.asarray(img.resize((96, 96), Image.Resampling.BOX))

    libs = {
        "opencv": lambda blob, codec: fit(decode_compressed(blob, codec), 96, 96, True),
        "pillow": lambda blob, codec: pillow(blob),
    }
    try:
        import simplejpeg

        libs["simplejpeg"] = lambda blob, codec: fit(
            simplejpeg.decode_jpeg(blob, colorspace="RGB"), 96, 96, True) \
            if codec == "jpeg" else None
    except ImportError:
        pass
    result: dict = {"frame": "640x480 -> 96x96 RGB", "frames": args.frames,
                    "bytes": {k: len(v) for k, v in blobs.items()}, "libraries": {}}
    for name, fn in libs.items():
        row = {}
        for codec, blob in blobs.items():
            if fn(blob, codec) is None:
                continue
            times, out = _time(lambda f=fn, b=blob, c=codec: f(b, c), args.frames)
            row[codec] = {"ms_p50": round(float(np.percentile(times, 50)), 3),
                          "ms_p99": round(float(np.percentile(times, 99)), 3),
                          "pixel_mae_vs_source": round(float(np.abs(
                              out.astype(int) - ref.astype(int)).mean()), 3)}
        result["libraries"][name] = row
    print(json.dumps(result))


if __name__ == "__main__":
    main()
