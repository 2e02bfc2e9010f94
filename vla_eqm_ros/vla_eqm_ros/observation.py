"""The one typed boundary between loose inputs (ROS messages, bag records, sim frames) and the
model.

Everything upstream (live topics, bag replay, the simulator) produces an ``Observation``; everything
downstream (normalization, the model, the policy) consumes one. Keeping a single type here is what
lets training and serving share a decode path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Observation:
    """One synchronized observation.

    images: camera name -> (H, W, 3) uint8 RGB, upright (row 0 is the top of the picture).
    state: (state_dim,) float32 in physical units, in the contract's order.
    goal: the natural-language instruction.
    stamp: seconds, the time of the newest input that went into this observation.
    """

    images: dict[str, np.ndarray]
    state: np.ndarray
    goal: str
    stamp: float = 0.0
    ages: dict[str, float] = field(default_factory=dict)  # input name -> age in s at assembly

    def __post_init__(self) -> None:
        for name, img in self.images.items():
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(
                    f"image '{name}' must be (H, W, 3) uint8, got {img.shape} {img.dtype}"
                )
        self.state = np.asarray(self.state, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(self.state)):
            raise ValueError(f"state has non-finite values: {self.state.tolist()}")
