"""The one map from a tunable setting's name to its field in ``PolicyConfig``.

A setting is what a user tunes without retraining: the solver (tau, k_max, step size, momentum,
deadline), the warm start, the FM step count, ``execute_steps`` and which decoder runs. Its name
is the policy node's ROS parameter name, ``Policy.update_solver``'s keyword, the demo's reported
key and the checkpoint YAML's field, all at once: every table that used to repeat this mapping by
hand (the node's parameter -> keyword map, the checkpoint values, the dry run, the policy's alias
table, the demo's reported keys) is derived from ``FIELDS`` here.

``apply`` never mutates: it returns a validated new ``PolicyConfig`` (the config dataclasses raise
ValueError quoting the bad value), so changing a setting on one policy cannot leak into another
that shares the model.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from vla_eqm_ros.config import PolicyConfig

# setting name -> path of its field in PolicyConfig
FIELDS: dict[str, tuple[str, ...]] = {
    "decoder": ("decoder",),
    "tau": ("solver", "tau"),
    "tau_by_goal": ("solver", "tau_by_goal"),
    "k_max": ("solver", "k_max"),
    "step_size": ("solver", "step_size"),
    "momentum": ("solver", "momentum"),
    "deadline_ms": ("solver", "deadline_ms"),
    "warm_start": ("warm_start", "mode"),
    "warm_start_fraction": ("warm_start", "fraction"),
    "warm_start_tail": ("warm_start", "tail"),
    "warm_start_frozen_rows": ("warm_start", "frozen_rows"),
    "fm_steps": ("fm", "steps"),
    "execute_steps": ("execute_steps",),
}
ALIASES = {"warm_start_mode": "warm_start"}  # older keyword, still accepted
FIXED = ("decoder",)  # checked, never changed: the field was trained for one decoder
# ROS may hand these over as 7.0
INTEGER = ("k_max", "fm_steps", "execute_steps", "warm_start_frozen_rows")


def canonical(name: str) -> str:
    """The setting's name, resolving aliases; unknown names raise with a suggestion."""
    name = ALIASES.get(name, name)
    if name not in FIELDS:
        hint = difflib.get_close_matches(name, [*FIELDS, *ALIASES], n=1)
        raise ValueError(f"unknown solver setting '{name}'"
                         + (f"; did you mean '{hint[0]}'?" if hint else ""))
    return name


def value(cfg: PolicyConfig, name: str) -> Any:
    """The setting's value in ``cfg``."""
    out: Any = cfg
    for part in FIELDS[canonical(name)]:
        out = getattr(out, part)
    return out


def values(cfg: PolicyConfig) -> dict[str, Any]:
    """Every setting's value in ``cfg`` (what a checkpoint ships as its tuned defaults)."""
    return {name: value(cfg, name) for name in FIELDS}


def apply(cfg: PolicyConfig, changes: dict[str, Any]) -> PolicyConfig:
    """A validated copy of ``cfg`` with ``changes`` applied; ``cfg`` itself is untouched.

    Raises ValueError for an unknown name, a bad value, or a different decoder (a field trained
    for EqM cannot be integrated as FM, nor the reverse).
    """
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for raw, new in changes.items():
        name = canonical(raw)
        if name in INTEGER and isinstance(new, float) and new.is_integer():
            new = int(new)
        if name in FIXED:
            if new != value(cfg, name):
                raise ValueError(f"{name} '{new}' needs a checkpoint trained for it; this "
                                 f"checkpoint's field was trained for '{value(cfg, name)}'")
            continue
        path = FIELDS[name]
        if len(path) == 1:
            top[path[0]] = new
        else:
            nested.setdefault(path[0], {})[path[1]] = new
    try:
        sections = {section: dataclasses.replace(getattr(cfg, section), **fields)
                    for section, fields in nested.items()}
        return cfg.replace(**sections, **top)
    except TypeError as exc:
        raise ValueError(str(exc)) from exc


def check(cfg: PolicyConfig, changes: dict[str, Any]) -> str:
    """``apply`` as a dry run: the reason it would refuse, or ''."""
    try:
        apply(cfg, changes)
    except ValueError as exc:
        return str(exc)
    return ""
