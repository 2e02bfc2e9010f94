"""CompressedImage decoding and resizing (``vla_eqm_ros.images``), on plain bytes.

Encoded here with Pillow, independently of OpenCV, so a colour-order mistake in the decoder cannot
cancel out against the same mistake in an encoder.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from vla_eqm_ros import images
from vla_eqm_ros.contract import CameraSpec
from vla_eqm_ros.decode import DecodeError, decode_camera


def _frame(h: int = 48, w: int = 64) -> np.ndarray:
    """Left third red, middle green, right blue: any swap of channels shows."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, : w // 3, 0] = 255
    rgb[:, w // 3: 2 * w // 3, 1] = 255
    rgb[:, 2 * w // 3:, 2] = 255
    return rgb


def _pil_bytes(array: np.ndarray, codec: str, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(array, mode=mode).save(out, format="PNG" if codec == "png" else "JPEG",
                                              quality=95)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["png", "rgb8; png compressed bgr8", "bgr8; png compressed bgr8",
                                 "PNG"])
def test_png_in_every_image_transport_spelling_decodes_to_the_exact_rgb_frame(fmt) -> None:
    np.testing.assert_array_equal(images.decode_compressed(_pil_bytes(_frame(), "png"), fmt),
                                  _frame())


@pytest.mark.parametrize("fmt", ["jpeg", "rgb8; jpeg compressed bgr8",
                                 "bgr8; jpeg compressed bgr8"])
def test_jpeg_decodes_in_rgb_order_within_codec_error(fmt) -> None:
    out = images.decode_compressed(_pil_bytes(_frame(), "jpeg"), fmt)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    err = np.abs(out.astype(int) - _frame().astype(int))
    assert np.median(err) <= 1 and err.mean() < 8.0, "JPEG loss is at the colour edges only"
    assert out[24, 5, 0] > 200 and out[24, 5, 2] < 50, "red stays red (not swapped with blue)"


def test_mono_frames_are_replicated_to_three_channels() -> None:
    gray = np.tile(np.arange(64, dtype=np.uint8), (48, 1))
    out = images.decode_compressed(_pil_bytes(gray, "png", mode="L"), "mono8; png compressed mono8")
    np.testing.assert_array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))


@pytest.mark.parametrize("fmt,why", [
    ("16UC1; compressedDepth png", "compressedDepth carries depth"),
    ("zstd", "zstd"), ("theora", "video stream"), ("bmp", "accepted: jpeg, png"),
    ("", "without a format")])
def test_unsupported_formats_are_refused_by_name_with_the_reason(fmt, why) -> None:
    with pytest.raises(images.ImageError, match=why):
        images.decode_compressed(_pil_bytes(_frame(), "png"), fmt)


def test_corrupt_and_16_bit_payloads_are_refused() -> None:
    with pytest.raises(images.ImageError, match="corrupt png"):
        images.decode_compressed(b"\x89PNG not really", "png")
    deep = io.BytesIO()
    PILImage.fromarray(np.full((8, 8), 40000, np.uint16)).save(deep, format="PNG")
    with pytest.raises(images.ImageError, match="16-bit"):
        images.decode_compressed(deep.getvalue(), "png")


def test_resizing_is_opt_in_and_area_averages_when_shrinking() -> None:
    big = _frame(480, 640)
    with pytest.raises(images.ImageError, match="size 480x640 != contract 96x96"):
        images.fit(big, 96, 96, resize=False)
    small = images.fit(big, 96, 96, resize=True)
    assert small.shape == (96, 96, 3)
    np.testing.assert_allclose(small.reshape(-1, 3).mean(0), big.reshape(-1, 3).mean(0), atol=1.5)
    assert small[48, 2].tolist() == [255, 0, 0], "inside a flat region the colour is exact"
    up = images.fit(_frame(12, 12), 24, 24, resize=True)
    assert up.shape == (24, 24, 3)


class _Compressed:
    """The fields decode reads, as rclpy and rosbags messages both carry them."""

    def __init__(self, data: bytes, fmt: str) -> None:
        self.data, self.format = data, fmt


def test_a_compressed_640x480_camera_reaches_the_model_at_its_size() -> None:
    spec = CameraSpec("corner", "/camera/corner/image_raw/compressed", 96, 96,
                      transport="compressed", resize=True)
    out = decode_camera(_Compressed(_pil_bytes(_frame(480, 640), "png"), "png"), spec)
    assert out.shape == (96, 96, 3) and out[48, 2].tolist() == [255, 0, 0]
    raw = CameraSpec("corner", "/camera/corner/image_raw", 96, 96)
    with pytest.raises(DecodeError, match="CompressedImage on a raw camera"):
        decode_camera(_Compressed(b"", "png"), raw)


def test_the_encoder_round_trips_through_the_decoder() -> None:
    png = images.encode_compressed(_frame(), "png")
    np.testing.assert_array_equal(images.decode_compressed(png, "bgr8; png compressed bgr8"),
                                  _frame())
