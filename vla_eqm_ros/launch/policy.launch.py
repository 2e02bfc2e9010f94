"""ros2 launch vla_eqm_ros policy.launch.py [checkpoint:=DIR] [autostart:=true|false]
                                          [with_sim:=true|false] [respawn:=true|false]
                                          [config:=my_robot_policy.yaml]

The policy node as a lifecycle node with config/policy.yaml; optionally the sim bridge. YAML is the
truth: an argument left empty keeps the YAML's value (``checkpoint``, ``autostart`` and
``with_sim`` all live in config/policy.yaml). Launch and the `bringup` entry point read those
settings through the same functions (``vla_eqm_ros.nodes.deployment``).

``config:=FILE`` replaces the package's config/policy.yaml with a robot's own parameter YAML (same
layout: ``policy_node: ros__parameters: ...``; docs/real_robot.md). ``respawn:=true`` restarts the policy node process when it exits; it exits non-zero (70) when its
executor stops under it, after holding position. Written for a real ROS 2 install (launch,
launch_ros); without one, the `bringup` entry point does the same.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from vla_eqm_ros.nodes import deployment
from vla_eqm_ros.nodes.runtime import load_params


def _nodes(context, *args, **kwargs):
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    config = arg("config") or os.path.join(get_package_share_directory("vla_eqm_ros"), "config",
                                           "policy.yaml")
    settings = deployment.resolve(deployment.split_settings(load_params(config, "policy_node")),
                                  arg("autostart"), arg("with_sim"))
    policy = LifecycleNode(
        package="vla_eqm_ros",
        executable="policy_node",
        name="policy_node",
        namespace="",
        output="screen",
        respawn=deployment.as_bool(arg("respawn"), "respawn"),
        respawn_delay=1.0,
        parameters=deployment.launch_parameters(config, arg("checkpoint")),
    )
    actions = [policy]
    if settings.autostart:
        actions += [
            RegisterEventHandler(OnStateTransition(
                target_lifecycle_node=policy, goal_state="inactive",
                entities=[EmitEvent(event=ChangeState(
                    lifecycle_node_matcher=matches_action(policy),
                    transition_id=Transition.TRANSITION_ACTIVATE))])),
            EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(policy),
                                        transition_id=Transition.TRANSITION_CONFIGURE)),
        ]
    if settings.with_sim:  # the bridge publishes what the served checkpoint needs (bringup's rule)
        from vla_eqm_sim.bringup import sim_parameters

        checkpoint = arg("checkpoint") or load_params(config, "policy_node").get("checkpoint")
        actions.append(Node(package="vla_eqm_sim", executable="sim_bridge", name="sim_bridge",
                            output="screen", parameters=[sim_parameters(checkpoint or None)]))
    return actions


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="checkpoint directory; empty = the YAML's"),
        DeclareLaunchArgument("autostart", default_value="",
                              description="configure and activate on start; empty = the YAML's"),
        DeclareLaunchArgument("with_sim", default_value="",
                              description="also start the vla_eqm_sim bridge; empty = the YAML's"),
        DeclareLaunchArgument("respawn", default_value="false",
                              description="restart the policy node process when it exits"),
        DeclareLaunchArgument("config", default_value="",
                              description="parameter YAML; empty = the package's policy.yaml"),
        OpaqueFunction(function=_nodes),
    ])
