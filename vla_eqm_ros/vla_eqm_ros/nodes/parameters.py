"""Every policy-node parameter in one table: descriptor, range, description, validation.

Ranged descriptors are what make rqt_reconfigure draw sliders, and they let rclpy refuse
out-of-range values before our code runs; the validation callback adds the checks a range cannot
express (choices, H-dependent bounds, limit vectors) and answers with a reason. Structural
parameters (checkpoint, topics, output mode) are read-only: changing them needs a reconfigure.

Solver and control parameters that the user does not set (YAML or launch) take the checkpoint's
values at configure time, so a checkpoint ships its tuned settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from vla_eqm_ros import settings

LOG10_TAU_MIN = -4.0  # tau below 1e-4 shows as -4 on the log slider


@dataclass(frozen=True)
class Spec:
    """One parameter: default, description, range (lo, hi) or choices, read-only flag."""

    name: str
    default: Any
    description: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False
    from_checkpoint: bool = False  # unset -> the checkpoint's value at configure


SPECS: tuple[Spec, ...] = (
    # --- structural (read-only) ---
    Spec("checkpoint", "", "Checkpoint directory; empty = the shipped default.", read_only=True),
    Spec("contract", "", "Contract YAML overriding the checkpoint's; empty = checkpoint's.",
         read_only=True),
    Spec("device", "cpu", "torch device for the policy.", read_only=True),
    Spec("output_mode", "", "Command message: float64_multi_array | joint_trajectory; "
         "empty = the contract's action.type.", choices=("", "float64_multi_array",
                                                        "joint_trajectory"), read_only=True),
    Spec("command_topic", "", "Command topic; empty = the contract's action.topic.",
         read_only=True),
    Spec("diagnostics_topic", "/diagnostics", "Where diagnostic_msgs/DiagnosticArray goes.",
         read_only=True),
    Spec("diagnostics_window", 200, "Samples behind each /diagnostics percentile (latency, "
         "solve time, iterations, boundary jump): the last N cycles. A benchmark sizes it to "
         "its whole run.", 10, 1_000_000, read_only=True),
    Spec("publish_debug", True, "Publish ~/action_chunk, ~/decoder_status and ~/plan_markers.",
         read_only=True),
    Spec("seed", 0, "Seed of the solver's initial noise (reproducible runs).", 0, 2**31 - 1,
         read_only=True),
    Spec("torch_threads", 1, "torch intra-op threads for the policy; 0 = torch's default. One "
         "thread leaves a core to the executor and avoids thread thrashing on a shared CPU.",
         0, 64, read_only=True),
    Spec("gil_switch_interval_ms", 0.5, "Python's thread switch interval "
         "(sys.setswitchinterval) for the node's process; 0 = leave Python's 5 ms. The solver "
         "thread releases the GIL at every torch op; at 5 ms every hand-back waits a full "
         "interval behind the executor's threads, which stretched 30 ms solves past a second.",
         0.0, 20.0, read_only=True),
    Spec("trigger", "timer", "What starts a control cycle: timer (control_rate_hz) | "
         "observation (each new complete observation; lockstep sims, sensor-to-command "
         "latency; the timer then only watches for stale inputs).",
         choices=("timer", "observation"), read_only=True),
    # --- solver (live) ---
    Spec("tau", 0.1, "EqM stop threshold: stop when r_k = ||f||/sqrt(H d) <= tau.", 0.0, 2.0,
         from_checkpoint=True),
    Spec("tau_by_goal", Parameter.Type.STRING_ARRAY, "A tau per language goal, entries "
         "'TAU=GOAL' (e.g. '0.05=pick up the puck and place it at the goal'); goals not "
         "listed use tau. The paper's best tau is task-dependent.", from_checkpoint=True),
    Spec("log10_tau", -1.0, "log10(tau): the same threshold on a log slider (kept in sync).",
         LOG10_TAU_MIN, math.log10(2.0)),
    Spec("k_max", 100, "EqM iteration cap K_max.", 1, 1000, from_checkpoint=True),
    Spec("step_size", 0.05, "EqM step size eta in A <- A~ - eta f(A~).", 0.001, 0.5,
         from_checkpoint=True),
    Spec("momentum", 0.3, "Nesterov momentum mu.", 0.0, 0.99, from_checkpoint=True),
    Spec("warm_start", "shifted", "Warm start: none | copy (paper) | shifted (time-aligned) | "
         "frozen (shifted, its first warm_start_frozen_rows held fixed during the solve).",
         choices=("none", "copy", "shifted", "frozen"), from_checkpoint=True),
    Spec("warm_start_fraction", 0.5, "Share of the horizon reused from the previous chunk.",
         0.0, 1.0, from_checkpoint=True),
    Spec("warm_start_tail", "hold", "Rest of the warm start: noise (paper) | hold.",
         choices=("noise", "hold"), from_checkpoint=True),
    Spec("warm_start_frozen_rows", 1, "frozen warm start: leading rows of the reused chunk held "
         "fixed during the solve (the actions that execute before the new chunk arrives).",
         0, 64, from_checkpoint=True),
    Spec("deadline_ms", 0.0, "Wall-clock budget per solve in ms (anytime decoding); 0 = none.",
         0.0, 1000.0, from_checkpoint=True),
    Spec("decoder", "eqm", "Decoder: eqm | fm (fm needs a flow-matching checkpoint).",
         choices=("eqm", "fm"), from_checkpoint=True),
    Spec("fm_steps", 10, "Euler steps N of the flow-matching decoder.", 1, 100,
         from_checkpoint=True),
    # --- control (live) ---
    Spec("execute_steps", 4, "Actions executed from each chunk before the next one (<= H).",
         1, 64, from_checkpoint=True),
    Spec("control_rate_hz", 20.0, "Control loop rate; unset = 1 / the contract's control_period.",
         1.0, 100.0, from_checkpoint=True),
    Spec("execution", "sync", "sync: solve, then execute | async: solve while executing.",
         choices=("sync", "async")),
    # --- safety (live) ---
    Spec("action_low", Parameter.Type.DOUBLE_ARRAY, "Lower action limits (d values); unset = "
         "the contract's; may only narrow them."),
    Spec("action_high", Parameter.Type.DOUBLE_ARRAY, "Upper action limits (d values); unset = "
         "the contract's; may only narrow them."),
    Spec("max_action_delta", 0.0, "Largest change per dimension per control step; 0 = off.",
         0.0, 10.0),
    Spec("camera_max_age", 0.0, "Maximum image age in s; 0 = each camera's contract value.",
         0.0, 5.0),
    Spec("state_max_age", 0.0, "Maximum state age in s; 0 = each source's contract value.",
         0.0, 5.0),
)
BY_NAME = {s.name: s for s in SPECS}


def markdown_table() -> str:
    """Every parameter as a markdown table (name, default, range or choices, live?, meaning).

    ``docs/policy_node.md`` embeds this text verbatim and a test compares the two, so the
    documented defaults and ranges are the declared ones.
    """
    rows = ["| parameter | default | range / choices | live | description |",
            "|---|---|---|---|---|"]
    for s in SPECS:
        if isinstance(s.default, Parameter.Type):
            default = "(checkpoint's when unset)" if s.from_checkpoint else "(contract)"
        elif s.from_checkpoint:
            default = f"{s.default!r} (checkpoint's when unset)"
        else:
            default = repr(s.default)
        if s.lo is not None and s.hi is not None:
            bounds = f"[{s.lo:g}, {s.hi:g}]"
        elif s.choices:
            bounds = " \\| ".join(c or "(empty)" for c in s.choices)
        else:
            bounds = ""
        live = "no (read-only)" if s.read_only else "yes"
        desc = s.description.replace("|", "\\|")
        rows.append(f"| `{s.name}` | {default} | {bounds} | {live} | {desc} |")
    return "\n".join(rows) + "\n"


def coerce(name: str, value: Any) -> Any:
    """An integer given for a floating-point parameter as that float (``control_rate_hz: 20``).

    rclpy refuses an INTEGER override of a DOUBLE parameter and the node would fail to start;
    YAML and ``--param`` users write ``20`` and mean ``20.0``. Other values pass unchanged, so
    real type errors still reach rclpy's check.
    """
    spec = BY_NAME.get(name)
    if spec is not None and isinstance(spec.default, float) and type(value) is int:
        return float(value)
    return value


def descriptor(spec: Spec) -> ParameterDescriptor:
    desc = spec.description + (f" Choices: {', '.join(c for c in spec.choices if c)}."
                               if spec.choices else "")
    d = ParameterDescriptor(description=desc, read_only=spec.read_only)
    if spec.lo is not None and spec.hi is not None:
        if isinstance(spec.default, bool) or not isinstance(spec.default, (int, float)):
            raise TypeError(f"range on non-numeric parameter {spec.name}")
        if isinstance(spec.default, int):
            d.integer_range = [IntegerRange(from_value=int(spec.lo), to_value=int(spec.hi), step=1)]
        else:
            d.floating_point_range = [
                FloatingPointRange(from_value=float(spec.lo), to_value=float(spec.hi), step=0.0)
            ]
    return d


def declare_all(node: Node) -> set[str]:
    """Declare every parameter; returns the names the user set (YAML, launch, overrides)."""
    overridden = set(getattr(node, "_parameter_overrides", {}))
    for spec in SPECS:
        node.declare_parameter(spec.name, spec.default, descriptor(spec))
    if "tau" in overridden and "log10_tau" not in overridden:
        node.set_parameters([companion_log(node.get_parameter("tau").value)])
    return overridden


def companion_log(tau: float) -> Parameter:
    return Parameter("log10_tau", value=max(LOG10_TAU_MIN, math.log10(tau)) if tau > 0
                     else LOG10_TAU_MIN)


def sync_tau_pair(params: list[Parameter]) -> list[Parameter]:
    """Pre-set hook: setting tau also sets log10_tau and vice versa (one change, two sliders)."""
    names = {p.name for p in params}
    out = list(params)
    for p in params:
        if p.name == "tau" and "log10_tau" not in names and isinstance(p.value, float):
            out.append(companion_log(p.value))
        elif p.name == "log10_tau" and "tau" not in names and isinstance(p.value, float):
            out.append(Parameter("tau", value=min(2.0, 10.0 ** p.value)))
    return out


def validate(params: list[Parameter], horizon: int | None,
             contract_low: np.ndarray | None, contract_high: np.ndarray | None,
             current: dict[str, Any]) -> SetParametersResult:
    """Checks a range cannot express; the first problem is the reason rqt shows."""
    new = {**current, **{p.name: p.value for p in params}}
    for p in params:
        spec = BY_NAME.get(p.name)
        if spec is None:
            continue
        if spec.choices and p.value not in spec.choices:
            return _no(f"{p.name} must be one of {[c for c in spec.choices if c]}, got {p.value!r}")
        if p.name == "execute_steps" and horizon is not None and p.value > horizon:
            return _no(f"execute_steps {p.value} exceeds the chunk horizon H={horizon}")
        if isinstance(p.value, float) and not math.isfinite(p.value):
            return _no(f"{p.name} must be finite, got {p.value}")
    if {"action_low", "action_high"} & {p.name for p in params} and contract_low is not None:
        reason = _check_limits(new.get("action_low"), new.get("action_high"),
                               contract_low, contract_high)
        if reason:
            return _no(reason)
    return SetParametersResult(successful=True)


def _check_limits(low: Any, high: Any, c_low: np.ndarray, c_high: Any) -> str:
    d = c_low.size
    lo = c_low if low is None else np.asarray(low, float)
    hi = c_high if high is None else np.asarray(high, float)
    if lo.size != d or hi.size != d:
        return f"action_low/action_high need {d} values, got {lo.size} and {hi.size}"
    if not (np.all(lo < hi)):
        return f"every action_low must be < action_high, got {lo.tolist()} / {hi.tolist()}"
    if np.any(lo < c_low) or np.any(hi > c_high):
        return (f"action limits may only narrow the contract's [{c_low.tolist()}, "
                f"{np.asarray(c_high).tolist()}]")
    return ""


def _no(reason: str) -> SetParametersResult:
    return SetParametersResult(successful=False, reason=reason)


def read(node: Node, name: str) -> Any:
    """A parameter's value, or None while an array parameter is unset."""
    try:
        return node.get_parameter(name).value
    except ParameterUninitializedException:
        return None


def snapshot(node: Node) -> dict[str, Any]:
    return {s.name: read(node, s.name) for s in SPECS}


# Parameter name -> Policy.update_solver keyword: the same names (``settings.FIELDS``); the
# decoder is checked at validation, never applied.
POLICY_KEYS = {name: name for name in settings.FIELDS if name not in settings.FIXED}


def checkpoint_values(cfg: Any, control_period: float) -> dict[str, Any]:
    """The checkpoint's value of every ``from_checkpoint`` parameter, clipped into its range."""
    raw = {**settings.values(cfg), "control_rate_hz": 1.0 / control_period}
    out = {}
    for name, value in raw.items():
        spec = BY_NAME[name]
        if isinstance(value, tuple):  # a string array; an empty one stays unset (ROS cannot
            if value:                 # infer the type of an empty list)
                out[name] = list(value)
            continue
        if spec.lo is not None and spec.hi is not None:
            value = type(spec.default)(min(max(value, spec.lo), spec.hi))
        out[name] = value
    return out


def dry_run(cfg: Any, changes: dict[str, Any]) -> str:
    """Validate setting changes against the policy's config dataclasses; the reason or ''."""
    return settings.check(cfg, {k: v for k, v in changes.items() if k in settings.FIELDS})
