"""Camera frames as a robot sends them: image_transport's CompressedImage, and any resolution.

Real camera drivers publish ``.../image_raw/compressed`` (``sensor_msgs/CompressedImage``, JPEG or
PNG, usually 640x480 or larger) next to raw ``sensor_msgs/Image``. This module turns the compressed
kind into the same (H, W, 3) uint8 RGB array the raw decoder produces, and fits either to the
model's size. The live node, bag conversion and replay all reach it through
``decode.ObservationAssembler``, so training and serving see identical pixels.

Format strings are image_transport's: ``jpeg``/``png`` (older drivers), or
``<original encoding>; <jpeg|png> compressed <encoding it was compressed as>`` such as
``rgb8; jpeg compressed bgr8`` or ``mono8; png compressed mono8``. Colour order: OpenCV decodes a
colour JPEG/PNG into BGR whatever the original encoding was (the compressed_image_transport
plugin converts colour images to bgr8 before encoding), so every colour frame is flipped BGR -> RGB
once; mono frames are replicated to three channels. Not supported, refused by name with the
reason: ``compressedDepth`` (depth, not colour), ``zstd``, ``theora`` (video streams, not
per-frame images) and 16-bit images.

Decoding uses OpenCV (``cv2.imdecode``): one call for JPEG and PNG, libjpeg-turbo inside, and the
same library does the resize. Resizing (contract ``resize: true`` per camera; off by default, so
a size mismatch is still an error unless asked for): ``INTER_AREA`` when shrinking (averages the
source pixels a target pixel covers: no aliasing from 640x480 down to 96x96), ``INTER_LINEAR``
when enlarging. The aspect ratio is not preserved: the frame is scaled to exactly the contract's
height x width, as the model was trained on frames of that shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CODECS = ("jpeg", "png")
REFUSED = {
    "compresseddepth": "compressedDepth carries depth images, not colour frames",
    "zstd": "zstd streams are not decodable frame by frame here",
    "theora": "theora is a video stream (needs the previous frames), not per-frame images",
}


class ImageError(ValueError):
    """A frame that cannot be decoded or fitted; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_format(fmt: str) -> str:
    """The codec (``jpeg`` | ``png``) of an image_transport format string, or ImageError."""
    text = str(fmt).strip().lower()
    for name, why in REFUSED.items():
        if name in text.replace(" ", ""):
            raise ImageError(f"unsupported CompressedImage format {fmt!r}: {why}")
    if not text:
        raise ImageError("CompressedImage without a format (expected jpeg or png)")
    found = [c for c in CODECS if c in text]
    if len(found) != 1:
        raise ImageError(f"unsupported CompressedImage format {fmt!r} (accepted: jpeg, png, or "
                         "image_transport's '<encoding>; <jpeg|png> compressed <encoding>')")
    return found[0]


def as_uint8(data: Any) -> np.ndarray:
    """uint8 view of a message byte field: bytes, array.array('B'), list or numpy (rclpy and
    rosbags messages carry different ones)."""
    if isinstance(data, np.ndarray):
        return data.astype(np.uint8, copy=False).reshape(-1)
    try:
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def decode_compressed(data: Any, fmt: str) -> np.ndarray:
    """JPEG/PNG bytes -> (H, W, 3) uint8 RGB; see the module docstring for colour order."""
    import cv2

    codec = parse_format(fmt)
    buf = as_uint8(data)
    if buf.size == 0:
        raise ImageError(f"empty {codec} payload")
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageError(f"corrupt {codec} data ({buf.size} bytes do not decode)")
    if image.dtype != np.uint8:
        raise ImageError(f"{image.dtype} {codec} images (16-bit) are not supported; send 8-bit")
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_compressed(rgb: np.ndarray, codec: str = "jpeg", quality: int = 90) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG/PNG bytes, as image_transport's compressed publisher writes
    them (the inverse of ``decode_compressed``; recorders and tests use it)."""
    import cv2

    if codec not in CODECS:
        raise ImageError(f"codec {codec!r}: expected jpeg or png")
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb, np.uint8), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if codec == "jpeg" else []
    ok, out = cv2.imencode(f".{codec}", bgr, params)
    if not ok:
        raise ImageError(f"could not encode a {rgb.shape} frame as {codec}")
    return out.tobytes()


def fit(image: np.ndarray, height: int, width: int, resize: bool) -> np.ndarray:
    """``image`` at exactly height x width: as is, resized (``resize``), or ImageError."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    if not resize:
        raise ImageError(f"size {h}x{w} != contract {height}x{width} "
                         "(set resize: true on the camera to scale it)")
    import cv2

    shrink = h * w > height * width
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
