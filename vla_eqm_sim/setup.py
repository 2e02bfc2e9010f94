"""ament_python package: MuJoCo / Meta-World on ROS 2 topics, scripted experts and recording."""

from glob import glob

from setuptools import find_packages, setup

package_name = "vla_eqm_sim"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="vla_eqm_ros developers",
    maintainer_email="dev@vla-eqm.invalid",
    description=(
        "Meta-World (MuJoCo) sim bridge on the robot's ROS 2 topics, scripted experts, "
        "rosbag2 recording."
    ),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "sim_bridge = vla_eqm_sim.nodes.sim_bridge:main",
            "expert_node = vla_eqm_sim.nodes.expert_node:main",
        ],
    },
)
