"""Test-wide environment, applied before any test module imports rclpy or MuJoCo.

DDS must never leave loopback on these machines, and parallel test runs (several developers, CI)
must not hear each other, so every pytest process gets a private ROS domain. Rendering goes through
OSMesa because EGL does not work on the CI hosts.
"""

from __future__ import annotations

import os

import pytest


def _private_domain_id() -> int:
    """A domain id per pytest process; VLA_EQM_TEST_DOMAIN_ID pins it for debugging."""
    pinned = os.environ.get("VLA_EQM_TEST_DOMAIN_ID")
    if pinned:
        return int(pinned)
    # Fast DDS accepts 0..232 with default port parameters; keep clear of the default domain 0.
    return 1 + os.getpid() % 200


ROS_TEST_ENV = {
    "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
    "ROS_DOMAIN_ID": str(_private_domain_id()),
    "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
    "MUJOCO_GL": "osmesa",
    "PYOPENGL_PLATFORM": "osmesa",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
os.environ.update(ROS_TEST_ENV)


@pytest.fixture(scope="session")
def ros_env() -> dict[str, str]:
    """The loopback-only DDS environment; pass it to any subprocess that starts a node."""
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    return {**os.environ, **ROS_TEST_ENV}


@pytest.fixture
def rclpy_context():
    """An initialized rclpy context, shut down after the test (for node-level tests)."""
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        if ctx.ok():
            rclpy.shutdown(context=ctx)
