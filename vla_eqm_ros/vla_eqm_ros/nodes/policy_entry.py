"""``ros2 run vla_eqm_ros policy_node``: the policy node alone, in its own supervised process.

Configure and activate come from outside (launch's lifecycle events, a lifecycle client, rqt):
this entry never autostarts, so that a launch file's configure event is never a second, refused
one. Everything else (parameters, loopback guard, supervision, exit codes) is ``bringup``'s.
"""

from __future__ import annotations

from vla_eqm_ros.nodes.bringup import exit_process, run_nodes


def main(argv: list[str] | None = None) -> None:
    exit_process(run_nodes(argv, autostart=False))
