"""Where a checkpoint came from: the source commit, read from the repository without running git.

Reading ``.git`` files directly (HEAD, loose refs, packed-refs) keeps training free of a git
binary and never touches the repository's state. A dirty working tree is not detected; the
commit says which code the run started from.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch


def find_git_dir(start: Path) -> Path | None:
    for d in [start, *start.parents]:
        if (d / ".git").is_dir():
            return d / ".git"
    return None


def git_commit(start: Path | None = None) -> str:
    """The commit HEAD points to, or "unknown" outside a repository."""
    git = find_git_dir((start or Path(__file__)).resolve())
    if git is None:
        return "unknown"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        loose = git / ref
        if loose.is_file():
            return loose.read_text().strip()
        packed = git / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0]
        return f"unborn ({ref})"
    except OSError:
        return "unknown"


def environment() -> dict[str, Any]:
    return {"torch": str(torch.__version__), "python": platform.python_version(),
            "machine": platform.machine(), "cuda": torch.cuda.is_available()}
