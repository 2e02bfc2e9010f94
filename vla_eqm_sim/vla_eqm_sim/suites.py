"""Meta-World task suites by name: ``mt50``, ``mt10`` and the difficulty groups ``easy``,
``medium``, ``hard`` and ``very_hard``.

The lists are data (``config/metaworld_suites.yaml``, which names its source), so a published
split is read, never retyped in code. Every command that takes ``--tasks`` also takes
``--suite``, and a ``--tasks`` entry may itself be a suite name: ``--tasks mt10`` and
``--suite mt10`` are the same list, and ``--suite hard --tasks reach-v3`` is the hard group plus
reach. Order is kept, duplicates are dropped, and an unknown name is an error that lists what is
known.
"""

from __future__ import annotations

import argparse
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SUITES_FILE = Path(__file__).resolve().parents[1] / "config" / "metaworld_suites.yaml"
GROUPS = ("easy", "medium", "hard", "very_hard")
SUITES = ("mt50", "mt10", *GROUPS)


@cache
def _data() -> dict[str, Any]:
    return yaml.safe_load(SUITES_FILE.read_text())


def suite_tasks(name: str) -> list[str]:
    """The tasks of a suite, in the data file's order."""
    data = _data()
    if name == "mt50":
        return [t for g in GROUPS for t in data["groups"][g]]
    if name == "mt10":
        return list(data["mt10"])
    if name in GROUPS:
        return list(data["groups"][name])
    raise ValueError(f"unknown suite {name!r}; known: {', '.join(SUITES)}")


def group_of(task: str) -> str:
    """The MT50 difficulty group of a task (``easy`` ... ``very_hard``)."""
    for g in GROUPS:
        if task in _data()["groups"][g]:
            return g
    raise ValueError(f"{task!r} is in no MT50 difficulty group")


def suites_source() -> str:
    return str(_data()["source"])


def published_results() -> dict[str, Any]:
    """The published MT50 rows (success %, per group and ``avg``) and their source."""
    return dict(_data()["published"])


def expand(tasks: list[str] | None, suites: list[str] | None = None) -> list[str]:
    """``--suite`` values, then ``--tasks`` values (comma or space separated; suite names
    expand), as one list without repeats. Task names are checked against Meta-World's."""
    names = [v for item in [*(suites or []), *(tasks or [])] for v in item.split(",") if v]
    out: list[str] = []
    for name in names:
        for task in (suite_tasks(name) if name in SUITES else [name]):
            if task not in out:
                out.append(task)
    known = set(suite_tasks("mt50"))
    unknown = [t for t in out if t not in known]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}: Meta-World v3 names such as reach-v3, "
                         f"or a suite: {', '.join(SUITES)}")
    return out


def add_task_arguments(parser: argparse.ArgumentParser, default: str = "") -> None:
    """``--tasks`` and ``--suite``, the same on every command that takes a task list (read them
    with ``expand(args.tasks, args.suite)``); ``default`` says what neither means."""
    parser.add_argument("--tasks", nargs="+", default=None,
                        help="Meta-World tasks, comma or space separated (a suite name such as "
                             "mt10 expands)" + (f"; default: {default}" if default else ""))
    parser.add_argument("--suite", nargs="+", choices=SUITES, default=None,
                        help="Meta-World suite(s): mt50, mt10 or an MT50 difficulty group "
                             "(config/metaworld_suites.yaml); adds to --tasks")
