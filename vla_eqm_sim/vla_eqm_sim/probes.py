"""The sim bridge's degraded-camera probe (the wrong-goal probe lives in ``instructions``).

Probes exist so that a confidence signal (EqM's final residual, hitting K_max) can be scored against
inputs a deployed policy meets but was never trained on (``bench/eqm_claims.py``). Noise is seeded
by the episode and the step, so a probed evaluation is as reproducible as a clean one.
"""

from __future__ import annotations

import numpy as np


def noisy_frames(frames: dict[str, np.ndarray], std: float, variation: int, seed: int,
                 step: int) -> dict[str, np.ndarray]:
    """uint8 frames with Gaussian pixel noise of ``std`` (0-255 units), clipped to [0, 255]."""
    if std <= 0.0:
        return frames
    rng = np.random.default_rng([int(seed), int(variation), int(step)])
    out = {}
    for name in sorted(frames):
        frame = frames[name]
        noise = rng.normal(0.0, std, size=frame.shape)
        out[name] = np.clip(frame.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return out
