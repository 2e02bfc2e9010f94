"""ament_python package: bags -> dataset -> EqM/FM checkpoints, evaluation, and the vla-eqm CLI."""

from glob import glob

from setuptools import find_packages, setup

package_name = "vla_eqm_train"

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
        "Training and evaluation for vla_eqm_ros: rosbag2 datasets, EqM/FM training, "
        "sim and bag evaluation."
    ),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "vla-eqm = vla_eqm_train.cli:main",
            "episode_recorder = vla_eqm_train.episode_recorder_node:main",
        ],
    },
)
