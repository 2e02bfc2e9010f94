"""A rosbags typestore that knows the ROS 2 Jazzy messages and ours (``vla_eqm_msgs``).

Bags must carry the definitions of every type they hold, so that ``ros2 bag play`` and ``rosbags``
readers can decode them without our code. The custom definitions are read from the installed
``vla_eqm_msgs`` (ament index, ``share/vla_eqm_msgs/msg``), or from the source tree when the
package is not installed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

MSGS_PACKAGE = "vla_eqm_msgs"
_SOURCE_MSG_DIR = Path(__file__).resolve().parents[2] / MSGS_PACKAGE / "msg"


def custom_msg_dir() -> Path:
    """Directory of our .msg files: the installed share directory first, then the source tree."""
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )

        try:
            installed = Path(get_package_share_directory(MSGS_PACKAGE)) / "msg"
            if installed.is_dir():
                return installed
        except PackageNotFoundError:
            pass
    except ImportError:  # ament_index_python is optional for reading bags
        pass
    if _SOURCE_MSG_DIR.is_dir():
        return _SOURCE_MSG_DIR
    raise FileNotFoundError(
        f"no {MSGS_PACKAGE} message definitions: not installed and {_SOURCE_MSG_DIR} missing"
    )


@lru_cache(maxsize=1)
def _custom_types() -> dict[str, Any]:
    types: dict[str, Any] = {}
    for path in sorted(custom_msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{MSGS_PACKAGE}/msg/{path.stem}"))
    return types


@lru_cache(maxsize=1)
def make_typestore() -> Typestore:
    """Jazzy's standard types plus every ``vla_eqm_msgs/msg/*.msg``."""
    store = get_typestore(Stores.ROS2_JAZZY)
    store.register(_custom_types())
    return store


def typestore_for(connections: Iterable[Any]) -> Typestore:
    """Jazzy, ours, and every definition a bag carries for a type neither knows (a robot's own
    messages, as ``ros2 bag record`` stores them). A definition that does not parse leaves its
    topic undecodable, which the reader reports when it needs that topic."""
    store = get_typestore(Stores.ROS2_JAZZY)
    store.register(_custom_types())
    for conn in connections:
        msgdef = getattr(conn, "msgdef", None)
        if conn.msgtype not in store.types and msgdef is not None and msgdef.data:
            with contextlib.suppress(Exception):
                store.register(get_types_from_msg(msgdef.data, conn.msgtype))
    return store
