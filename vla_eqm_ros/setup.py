"""ament_python package: the ROS-free EqM policy core and the policy node."""

from glob import glob

from setuptools import find_packages, setup

package_name = "vla_eqm_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.rviz")),
    ],
    package_data={package_name: ["checkpoints/*/*", "checkpoints/*/*/*"]},
    include_package_data=True,
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="vla_eqm_ros developers",
    maintainer_email="dev@vla-eqm.invalid",
    description=(
        "pi0-style VLA with an Equilibrium-Matching action decoder, "
        "served as a ROS 2 lifecycle node."
    ),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "policy_node = vla_eqm_ros.nodes.policy_entry:main",
            "bringup = vla_eqm_ros.nodes.bringup:main",
        ],
    },
)
