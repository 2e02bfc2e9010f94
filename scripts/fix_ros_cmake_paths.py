"""Point the ROS wheels' exported CMake files at this machine's Python and numpy headers.

The ros-jazzy-* wheels are built in a manylinux image, and their exported CMake targets name that
image's include directories (/opt/python/cp311-cp311/...). CMake refuses targets whose include
directories do not exist, so building vla_eqm_msgs fails until those paths are rewritten. We edit
the venv's own copies only (never create directories under /opt). Idempotent: prints how many files
it changed.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

PY_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
NUMPY_INCLUDE = re.compile(
    r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/(?:_core|core)/include"
)


def main(prefix: str) -> int:
    py_inc = sysconfig.get_paths()["include"]
    np_inc = numpy.get_include()
    if not Path(py_inc, "Python.h").exists():
        print(f"error: Python headers not found at {py_inc} (install python3-dev)", file=sys.stderr)
        return 1
    changed = 0
    for path in Path(prefix, "share").glob("*/cmake/*.cmake"):
        text = path.read_text()
        if "/opt/python/" not in text:
            continue
        new = NUMPY_INCLUDE.sub(np_inc, text)
        new = PY_INCLUDE.sub(py_inc, new)
        if new != text:
            path.write_text(new)
            changed += 1
    print(f"fix_ros_cmake_paths: rewrote {changed} CMake export file(s) under {prefix}/share")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else sys.prefix))
