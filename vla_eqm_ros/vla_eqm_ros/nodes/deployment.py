"""Deployment settings that are not node parameters, read the same way by launch and ``bringup``.

``config/policy.yaml`` carries ``autostart``, ``with_sim`` and ``executor`` beside the node's
parameters, because an operator edits one file. The node never sees them: ``split_settings``
takes them out, for the launch file and the Python bring-up alike. ``launch_parameters`` is the
launch file's parameter list as a plain function (``launch`` is not installable here, so a test
calls this instead): an empty ``checkpoint`` argument means "the YAML's", never an override
with "".

ROS-free (YAML only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXECUTORS = ("single_threaded", "multi_threaded")
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class DeploymentSettings:
    autostart: bool = True   # configure + activate on start
    with_sim: bool = False   # also start vla_eqm_sim's bridge
    executor: str = "single_threaded"  # | multi_threaded (runtime.make_executor)


def as_bool(value: Any, name: str) -> bool:
    """A YAML or launch-argument boolean; anything else is a clear error."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(f"{name}: expected true or false, got {value!r}")


def as_executor(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in EXECUTORS:
        raise ValueError(f"executor: expected one of {EXECUTORS}, got {value!r}")
    return text


def split_settings(params: dict[str, Any]) -> DeploymentSettings:
    """Remove ``autostart`` / ``with_sim`` / ``executor`` from ``params`` (in place) and return
    them."""
    defaults = DeploymentSettings()
    return DeploymentSettings(
        autostart=as_bool(params.pop("autostart", defaults.autostart), "autostart"),
        with_sim=as_bool(params.pop("with_sim", defaults.with_sim), "with_sim"),
        executor=as_executor(params.pop("executor", defaults.executor)))


def resolve(settings: DeploymentSettings, autostart: str = "", with_sim: str = ""
            ) -> DeploymentSettings:
    """Launch arguments over the YAML: an empty argument keeps the YAML's value."""
    return DeploymentSettings(
        autostart=as_bool(autostart, "autostart") if autostart else settings.autostart,
        with_sim=as_bool(with_sim, "with_sim") if with_sim else settings.with_sim,
        executor=settings.executor)


def launch_parameters(config: str | Path, checkpoint: str = "") -> list[Any]:
    """The policy node's ``parameters=[...]`` in launch: the YAML, then only the overrides that
    were actually given (an empty ``checkpoint`` would otherwise beat the YAML's)."""
    out: list[Any] = [str(config)]
    if checkpoint:
        out.append({"checkpoint": checkpoint})
    return out
