"""The launch file, checked as far as this environment allows (launch/launch_ros are not on PyPI).

Verified here: it parses, defines generate_launch_description, names executables that setup.py
installs and a config file that exists. Not verified: that `ros2 launch` runs it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1]
LAUNCH = PKG / "launch" / "policy.launch.py"


def _calls(tree: ast.AST, func: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == func]


def _kw(call: ast.Call, name: str) -> str | None:
    for k in call.keywords:
        if k.arg == name and isinstance(k.value, ast.Constant):
            return k.value.value
    return None


def _console_scripts(setup: Path) -> set[str]:
    text = setup.read_text()
    return {line.split("=")[0].strip().strip('"') for line in text.splitlines()
            if "= " in line and ":main" in line}


def test_the_launch_file_parses_and_defines_generate_launch_description() -> None:
    tree = ast.parse(LAUNCH.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description"
               for n in tree.body)


def test_launched_executables_are_console_scripts_of_their_packages() -> None:
    tree = ast.parse(LAUNCH.read_text())
    nodes = _calls(tree, "LifecycleNode") + _calls(tree, "Node")
    assert nodes
    for call in nodes:
        package, executable = _kw(call, "package"), _kw(call, "executable")
        scripts = _console_scripts(PKG.parent / package / "setup.py")
        assert executable in scripts, f"{package} installs {scripts}, not {executable}"


def test_the_config_file_the_launch_file_names_exists_and_lists_policy_node_parameters() -> None:
    import yaml

    text = LAUNCH.read_text()
    assert '"policy.yaml"' in text
    doc = yaml.safe_load((PKG / "config" / "policy.yaml").read_text())
    assert "checkpoint" in doc["policy_node"]["ros__parameters"]


def test_launch_arguments_cover_autostart_checkpoint_and_the_sim() -> None:
    tree = ast.parse(LAUNCH.read_text())
    declared = {c.args[0].value for c in _calls(tree, "DeclareLaunchArgument")}
    assert declared == {"checkpoint", "autostart", "with_sim", "respawn", "config"}


def test_an_empty_checkpoint_argument_keeps_the_yaml_checkpoint() -> None:
    """The launch file's parameter list (``deployment.launch_parameters``, the function it calls):
    the YAML first, and a ``checkpoint`` entry only when the argument was given. Before, an empty
    ``checkpoint:=`` came after the YAML and silently replaced its checkpoint with ""."""
    from vla_eqm_ros.nodes import deployment

    config = PKG / "config" / "policy.yaml"
    assert deployment.launch_parameters(config, "") == [str(config)]
    assert deployment.launch_parameters(config, "/ckpt") == [str(config), {"checkpoint": "/ckpt"}]
    tree = ast.parse(LAUNCH.read_text())
    assert _calls(tree, "launch_parameters"), "the launch file builds its list with it"


def test_autostart_and_with_sim_come_from_the_yaml_unless_an_argument_is_given() -> None:
    from vla_eqm_ros.nodes import deployment
    from vla_eqm_ros.nodes.runtime import load_params

    params = load_params(PKG / "config" / "policy.yaml", "policy_node")
    yaml_settings = deployment.split_settings(params)
    assert "autostart" not in params and "with_sim" not in params, "never node parameters"
    assert deployment.resolve(yaml_settings) == yaml_settings
    assert deployment.resolve(yaml_settings, autostart="false").autostart is False
    assert deployment.resolve(yaml_settings, with_sim="true").with_sim is True
    tree = ast.parse(LAUNCH.read_text())
    assert _calls(tree, "split_settings") and _calls(tree, "resolve")
    import pytest

    with pytest.raises(ValueError, match="autostart: expected true or false"):
        deployment.resolve(yaml_settings, autostart="maybe")


RVIZ = PKG / "config" / "policy.rviz"


def _rviz_displays() -> list[dict]:
    import yaml

    doc = yaml.safe_load(RVIZ.read_text())
    manager = doc["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "world"
    return manager["Displays"]


def test_the_rviz_config_parses_and_shows_camera_plan_status_and_frames() -> None:
    displays = _rviz_displays()
    classes = {d["Class"] for d in displays}
    assert {"rviz_default_plugins/Image", "rviz_default_plugins/MarkerArray",
            "rviz_default_plugins/TF"} <= classes
    namespaces = {ns for d in displays if d["Class"].endswith("MarkerArray")
                  for ns in d.get("Namespaces", {})}
    assert namespaces == {"plan", "status"}, "the plan and its status label (markers.py)"
    image = next(d for d in displays if d["Class"] == "rviz_default_plugins/Image")
    assert image["Topic"]["Reliability Policy"] == "Best Effort", "cameras use sensor-data QoS"


def test_the_rviz_topics_are_ones_a_configured_policy_node_publishes_or_reads(tmp_path) -> None:
    from policy_node_harness import Harness, build_checkpoint
    from rclpy.lifecycle import TransitionCallbackReturn

    h = Harness({"checkpoint": str(build_checkpoint(tmp_path / "ckpt"))})
    try:
        assert h.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        published = {n for n, _ in h.node.get_publisher_names_and_types_by_node(
            "policy_node", "/")}
        read = {n for n, _ in h.node.get_subscriber_names_and_types_by_node("policy_node", "/")}
    finally:
        h.close()
    for d in _rviz_displays():
        topic = d.get("Topic", {}).get("Value")
        if topic is None:
            continue
        if d["Class"].endswith("MarkerArray"):
            assert topic in published, f"{d['Name']}: node publishes {sorted(published)}"
        elif d["Class"].endswith("Image"):
            assert topic in read, f"{d['Name']}: node reads {sorted(read)}"
        else:
            assert topic == "/ee_pose", "the end-effector pose of the sim bridge / robot"
