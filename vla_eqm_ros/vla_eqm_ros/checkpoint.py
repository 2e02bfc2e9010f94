"""Checkpoint directories: ``model.safetensors`` + ``config.yaml``, validated, never unpickled.

A checkpoint is what training hands to serving, so loading it must either give back exactly the
model that was saved (bit-exact) or fail loudly with the file and the problem named: a robot must
not start on a half-read or mismatched model. Only safetensors and ``yaml.safe_load`` touch the
files, so a checkpoint cannot execute code.

config.yaml: ``format_version``, ``policy`` (PolicyConfig.to_dict()), ``language_encoder`` (identity
of the frozen MiniLM, whose weights are a package dependency and never stored here).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from vla_eqm_ros.config import PolicyConfig
from vla_eqm_ros.language import encoder_identity
from vla_eqm_ros.model import PI0EqMModel

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.yaml"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, corrupt or does not match its config."""


def _atomic_write(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_checkpoint(
    directory: str | Path, model: PI0EqMModel, config: PolicyConfig | None = None,
) -> Path:
    """Write ``directory/{model.safetensors, config.yaml}`` (each atomically); returns the dir."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config if config is not None else model.config
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in
               model.persistent_state_dict().items()}
    meta = {"format_version": str(FORMAT_VERSION), "decoder": cfg.decoder}
    _atomic_write(out / WEIGHTS, lambda p: save_file(tensors, p, metadata=meta))
    doc: dict[str, Any] = {"format_version": FORMAT_VERSION, "policy": cfg.to_dict()}
    if cfg.model.backbone == "small":
        doc["language_encoder"] = encoder_identity()
    text = yaml.safe_dump(doc, sort_keys=False)
    _atomic_write(out / CONFIG, lambda p: Path(p).write_text(text))
    return out


def load_config(directory: str | Path) -> PolicyConfig:
    """Read and validate ``config.yaml`` only (cheap; no weights)."""
    path = Path(directory) / CONFIG
    if not Path(directory).is_dir():
        raise CheckpointError(f"{directory}: checkpoint directory does not exist")
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (a checkpoint needs {CONFIG} and {WEIGHTS})")
    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise CheckpointError(f"{path}: expected a mapping, got {type(doc).__name__}")
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format_version {version!r} is not supported (this code reads "
            f"{FORMAT_VERSION})")
    if "policy" not in doc:
        raise CheckpointError(f"{path}: no 'policy' section")
    try:
        return PolicyConfig.from_dict(doc["policy"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: invalid policy config: {exc}") from exc


def load_checkpoint(
    directory: str | Path, device: str | torch.device = "cpu", **backbone_kwargs: Any,
) -> tuple[PolicyConfig, PI0EqMModel]:
    """Rebuild the model from ``config.yaml`` and load ``model.safetensors`` into it, strictly."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config = load_config(directory)
    path = Path(directory) / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (a checkpoint needs {CONFIG} and {WEIGHTS})")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt or unreadable safetensors file ({exc})") from exc
    model = PI0EqMModel(config, **backbone_kwargs)
    expected = model.persistent_state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: tensors do not match the architecture in {CONFIG}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    for key, ref in expected.items():
        got = tensors[key]
        if tuple(got.shape) != tuple(ref.shape) or got.dtype != ref.dtype:
            raise CheckpointError(
                f"{path}: tensor '{key}' is {tuple(got.shape)} {got.dtype}, the config "
                f"builds {tuple(ref.shape)} {ref.dtype}")
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise CheckpointError(f"{path}: tensor '{key}' has non-finite values")
    model.load_state_dict(tensors, strict=False)
    model.to(device)
    model.eval()
    return config, model
