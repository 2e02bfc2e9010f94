"""ros2 launch vla_eqm_ros policy.launch.py [checkpoint:=DIR] [autostart:=true] [with_sim:=false]

The policy node as a lifecycle node with config/policy.yaml; optionally the sim bridge. YAML is the
truth; launch arguments only override deployment settings. Written for a real ROS 2 install
(launch, launch_ros); without one, the `bringup` entry point does the same.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition


def generate_launch_description():
    config = os.path.join(get_package_share_directory("vla_eqm_ros"), "config", "policy.yaml")
    autostart = LaunchConfiguration("autostart")
    policy = LifecycleNode(
        package="vla_eqm_ros",
        executable="policy_node",
        name="policy_node",
        namespace="",
        output="screen",
        parameters=[config, {"checkpoint": LaunchConfiguration("checkpoint")}],
    )
    configure = EmitEvent(
        event=ChangeState(lifecycle_node_matcher=matches_action(policy),
                          transition_id=Transition.TRANSITION_CONFIGURE),
        condition=IfCondition(autostart),
    )
    activate = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=policy, goal_state="inactive",
            entities=[EmitEvent(event=ChangeState(
                lifecycle_node_matcher=matches_action(policy),
                transition_id=Transition.TRANSITION_ACTIVATE))],
        ),
        condition=IfCondition(autostart),
    )
    sim = Node(package="vla_eqm_sim", executable="sim_bridge", name="sim_bridge", output="screen",
               condition=IfCondition(LaunchConfiguration("with_sim")))
    return LaunchDescription([
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="checkpoint directory; empty = shipped default"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="configure and activate the policy node on start"),
        DeclareLaunchArgument("with_sim", default_value="false",
                              description="also start the vla_eqm_sim bridge"),
        policy, activate, configure, sim,
    ])
