"""Warm start: initialize the EqM solve from the previous chunk instead of pure noise.

EqM iterates carry no time semantics, so any good guess is a valid starting point (paper Sec.
III-C). Consecutive control cycles are strongly correlated; how much that saves depends on how the
previous chunk is aligned with the new one:

- ``copy`` (the paper, Eq. 5): rows [0, n) of the previous chunk become rows [0, n) of the guess.
  After the robot executed s actions, those rows describe times that are already past.
- ``shifted`` (time-aligned): rows [s, s + n) of the previous chunk become rows [0, n), so each row
  lands at the time it was planned for. n = round(fraction * H), capped at H - s.
- ``frozen``: ``shifted``, and the first ``frozen_rows`` of those rows stay fixed during the solve
  (``eqm_solve(frozen_rows=...)``): the actions that execute while the new chunk is solved (async
  execution) or that the robot is committed to, so the solver only fits the rest to them.
  Real-time chunking for EqM, by a hard mask instead of a guidance gradient.

The rest of the chunk (the tail) is fresh noise (the paper) or the last reused row held constant
(``hold``: a stationary continuation is a much better guess than noise for smooth motions).

The state is explicit and owned by the caller (the policy): no hidden globals; reset it on a new
goal or episode. All chunks here are in the model's normalized action space.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from vla_eqm_ros.config import WarmStartConfig


@dataclass
class WarmStartState:
    """The previous solve's output and how many of its actions ran since it was produced."""

    previous: Tensor | None = None  # (B, H, d) normalized chunk returned by the last solve
    steps_since: int = 0  # actions of ``previous`` executed since it was produced

    def reset(self) -> None:
        """Forget the previous chunk (new goal, new episode, policy reset)."""
        self.previous = None
        self.steps_since = 0

    def update(self, chunk: Tensor) -> None:
        """Record a freshly returned chunk; none of it has been executed yet."""
        self.previous = chunk.detach().clone()
        self.steps_since = 0

    def advance(self, steps: int = 1) -> None:
        """Count actions of the previous chunk that the robot executed."""
        self.steps_since += int(steps)


def reused_rows(cfg: WarmStartConfig, horizon: int, steps_executed: int) -> tuple[int, int]:
    """(first row of the previous chunk to reuse, number of rows n); n = 0 means cold start."""
    n = int(round(cfg.fraction * horizon))
    if cfg.mode == "copy":
        return 0, min(n, horizon)
    if cfg.mode in ("shifted", "frozen"):
        s = max(0, int(steps_executed))
        return s, max(0, min(n, horizon - s))
    return 0, 0


def frozen_rows(cfg: WarmStartConfig, horizon: int, steps_executed: int, used: bool) -> int:
    """Leading rows of the initial guess the solver must hold fixed (0 unless ``frozen``)."""
    if cfg.mode != "frozen" or not used:
        return 0
    return min(int(cfg.frozen_rows), reused_rows(cfg, horizon, steps_executed)[1], horizon - 1)


def init_chunk(
    state: WarmStartState,
    cfg: WarmStartConfig,
    noise: Tensor,
    steps_executed: int | None = None,
) -> tuple[Tensor, bool]:
    """The solver's initial guess A^(0) (B, H, d) and whether the previous chunk was used.

    ``noise`` (B, H, d) is the cold-start draw (and the ``noise`` tail); ``steps_executed``
    defaults to ``state.steps_since``. Pure: neither argument is modified.
    """
    prev = state.previous
    if cfg.mode == "none" or prev is None or prev.shape != noise.shape:
        return noise, False
    horizon = noise.shape[1]
    steps = state.steps_since if steps_executed is None else steps_executed
    start, n = reused_rows(cfg, horizon, steps)
    if n <= 0:
        return noise, False
    x0 = noise.clone()
    reused = prev[:, start:start + n].to(noise.dtype)  # (B, n, d)
    x0[:, :n] = reused
    if cfg.tail == "hold" and n < horizon:
        x0[:, n:] = reused[:, -1:].expand(-1, horizon - n, -1)
    return x0, True


