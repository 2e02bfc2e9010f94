"""PolicyConfig: presets, validation that quotes the bad value, and the YAML round trip."""

from __future__ import annotations

import dataclasses

import pytest

from vla_eqm_ros.config import (
    CameraConfig,
    ModelConfig,
    PolicyConfig,
    SolverConfig,
    WarmStartConfig,
    get_preset,
)


def test_every_preset_builds_and_the_debug_preset_is_tiny():
    dbg = get_preset("debug")
    assert get_preset("default").model.width >= 128
    assert dbg.model.width < 64 and dbg.model.horizon <= 8
    assert get_preset("default_fm").decoder == "fm"


def test_a_preset_typo_suggests_the_closest_name():
    with pytest.raises(KeyError, match="did you mean 'debug'"):
        get_preset("debgu")


@pytest.mark.parametrize(
    ("build", "quoted"),
    [
        (lambda: SolverConfig(tau=-1.0), "-1.0"),
        (lambda: SolverConfig(momentum=1.0), "1.0"),
        (lambda: SolverConfig(step_size=0.0), "0.0"),
        (lambda: SolverConfig(k_max=0), "0"),
        (lambda: WarmStartConfig(fraction=1.5), "1.5"),
        (lambda: WarmStartConfig(mode="shfted"), "did you mean 'shifted'"),
        (lambda: ModelConfig(width=130, heads=4), "130"),
        (lambda: PolicyConfig(decoder="flow"), "'flow'"),
        (lambda: PolicyConfig(execute_steps=99), "99"),
        (lambda: CameraConfig("a/b", 10, 10), "a/b"),
    ],
)
def test_bad_values_are_rejected_with_the_value_quoted(build, quoted):
    with pytest.raises(ValueError, match=quoted):
        build()


def test_yaml_round_trip_is_lossless(tmp_path):
    cfg = get_preset("debug").replace(
        action_names=("x", "y", "z", "grip"), contract={"topics": {"state": "/joint_states"}},
        provenance={"dataset": "demo.mcap", "steps": 3})
    path = tmp_path / "cfg.yaml"
    cfg.save_yaml(path)
    back = PolicyConfig.load_yaml(path)
    assert back == cfg
    assert isinstance(back.model.cameras[0], CameraConfig)


def test_unknown_keys_are_rejected_with_the_closest_known_key():
    data = get_preset("debug").to_dict()
    data["solver"]["tua"] = 0.2
    with pytest.raises(ValueError, match="did you mean 'tau'"):
        PolicyConfig.from_dict(data)


def test_configs_are_frozen():
    cfg = get_preset("debug")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.solver.tau = 0.5  # type: ignore[misc]
