"""MP4 video through PyAV: LeRobot's AV1 encoding on export, frame-exact decoding on import.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vla_eqm_train.data.lerobot.layout import (
    ENCODERS,
    LeRobotError,
)


def _pick_encoder(height: int, width: int) -> tuple[str, dict[str, str], str]:
    """(encoder, options, pix_fmt) for one camera: the first of ENCODERS this PyAV build has."""
    import av

    for name, options in ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # UnknownCodecError: not compiled into this ffmpeg
            continue
        odd = height % 2 or width % 2
        if odd and name == "mpeg4":
            continue  # 4:2:0 only, and mpeg4 cannot code odd sizes
        pix_fmt = "yuv444p" if odd and name == "libx264" else "yuv420p"
        return name, dict(options), pix_fmt
    raise LeRobotError(f"this PyAV build has none of the encoders {[e for e, _ in ENCODERS]}")


def _encode_video(path: Path, frames: Any, rows: np.ndarray, fps: int, crf: int | None,
                  bar: Any) -> dict[str, Any]:
    """Encode frames[rows] (uint8 H x W x 3) as one MP4; frame k is shown at k / fps."""
    import av

    height, width = int(frames.shape[1]), int(frames.shape[2])
    encoder, options, pix_fmt = _pick_encoder(height, width)
    if crf is not None and encoder != "mpeg4":
        options["crf"] = str(int(crf))
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream: Any = container.add_stream(encoder, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = Fraction(1, fps)
        for k, row in enumerate(rows):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[row]), format="rgb24")
            frame.pts = k
            for packet in stream.encode(frame):
                container.mux(packet)
            bar.update(1)
        for packet in stream.encode():
            container.mux(packet)
    return {"encoder": encoder, "options": options, "pix_fmt": pix_fmt}


def _video_info(path: Path, fps: int, encoding: dict[str, Any]) -> dict[str, Any]:
    """The ``info`` of a video feature as LeRobot writes it (probed from the file)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info: dict[str, Any] = {
            "video.height": int(stream.height), "video.width": int(stream.width),
            "video.codec": stream.codec_context.codec.canonical_name,
            "video.pix_fmt": stream.codec_context.pix_fmt,
            "video.is_depth_map": False, "video.fps": fps, "video.channels": 3,
            "has_audio": len(container.streams.audio) > 0,
        }
    for key in ("g", "crf", "preset"):
        if key in encoding["options"]:
            info[f"video.{key}"] = int(encoding["options"][key])
    return info


class _VideoReader:
    """Frames of one MP4 at requested times, decoded in a single forward pass.

    A frame is the one whose presentation time is nearest the request, within a quarter frame
    period (a missing or shifted frame is an error, never a silent neighbour); a request earlier
    than the last one seeks back.
    """

    def __init__(self, path: Path, fps: float, hw: tuple[int, int]) -> None:
        if not path.is_file():
            raise LeRobotError(f"{path}: missing video file (listed by the dataset's metadata)")
        self.path, self.tol, self.hw = path, 0.25 / fps, hw
        self.container: Any = None
        self._open(None)

    def _open(self, seek_s: float | None) -> None:
        import av

        self.close()
        try:
            self.container = av.open(str(self.path))
            self.stream = self.container.streams.video[0]
        except Exception as exc:  # FFmpegError, IndexError (no video stream)
            raise LeRobotError(f"{self.path}: unreadable video ({type(exc).__name__}: "
                               f"{exc})") from exc
        self.stream.thread_type = "AUTO"
        size = (int(self.stream.height), int(self.stream.width))
        if size != self.hw:
            raise LeRobotError(f"{self.path}: video frames are {size[0]}x{size[1]}, the "
                               f"dataset's feature says {self.hw[0]}x{self.hw[1]}")
        if seek_s is not None:
            self.container.seek(int(seek_s / self.stream.time_base), stream=self.stream,
                                backward=True)
        self.frames = self.container.decode(self.stream)
        self.cur: tuple[float, Any] | None = None
        self.nxt = self._next()

    def _next(self) -> tuple[float, Any] | None:
        try:
            frame = next(self.frames, None)
        except Exception as exc:
            raise LeRobotError(f"{self.path}: corrupt video ({type(exc).__name__}: "
                               f"{exc})") from exc
        if frame is None:
            return None
        if frame.pts is None:
            raise LeRobotError(f"{self.path}: a frame without a presentation time")
        return float(frame.pts * self.stream.time_base), frame

    def read(self, times: np.ndarray) -> np.ndarray:
        out = np.empty((len(times), *self.hw, 3), np.uint8)
        for i, t in enumerate(times):
            if self.cur is not None and t < self.cur[0] - self.tol:
                self._open(t)
            while self.nxt is not None and self.nxt[0] <= t + self.tol:
                self.cur, self.nxt = self.nxt, self._next()
            if self.cur is None or abs(self.cur[0] - t) > self.tol:
                near = "none" if self.cur is None else f"{self.cur[0]:.4f} s"
                raise LeRobotError(f"{self.path}: no frame at {t:.4f} s (nearest earlier: "
                                   f"{near}); the video is shorter than its episodes or shifted")
            out[i] = self.cur[1].to_ndarray(format="rgb24")
        return out

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None


def _decode_images(column: Any, root: Path, where: str, hw: tuple[int, int]) -> np.ndarray:
    """An ``image`` feature column (struct of PNG/JPEG ``bytes`` or a ``path``) -> frames."""
    from PIL import Image

    out = np.empty((len(column), *hw, 3), np.uint8)
    for i, cell in enumerate(column.to_pylist()):
        cell = cell or {}
        try:
            if cell.get("bytes"):
                img = Image.open(io.BytesIO(cell["bytes"]))
            elif cell.get("path"):
                img = Image.open(root / cell["path"])
            else:
                raise ValueError("neither bytes nor path")
            arr = np.asarray(img.convert("RGB"))
        except Exception as exc:
            raise LeRobotError(f"{where}: row {i}: undecodable image ({exc})") from exc
        if arr.shape[:2] != hw:
            raise LeRobotError(f"{where}: row {i}: image is {arr.shape[0]}x{arr.shape[1]}, the "
                               f"feature says {hw[0]}x{hw[1]}")
        out[i] = arr
    return out
