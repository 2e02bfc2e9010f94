"""The contract that serves a checkpoint, and the check that it fits the model."""

from __future__ import annotations

import dataclasses

import pytest

from vla_eqm_ros.compat import check_compatible, resolve_contract
from vla_eqm_ros.config import get_preset


def test_a_checkpoint_without_a_contract_gets_one_built_from_its_model_config():
    cfg = get_preset("debug")
    contract = resolve_contract(cfg)
    assert contract.state_dim == cfg.model.state_dim
    assert contract.action_dim == cfg.model.action_dim
    assert contract.camera_names == [c.name for c in cfg.model.cameras]
    check_compatible(contract, cfg)


def test_the_checkpoint_contract_wins_over_the_default_and_a_yaml_override_wins_over_both(
        tmp_path):
    cfg = get_preset("debug")
    stored = resolve_contract(cfg).to_dict()
    stored["control_period"] = 0.025
    cfg = cfg.replace(contract=stored)
    assert resolve_contract(cfg).control_period == 0.025
    override = dict(stored, control_period=0.1)
    path = tmp_path / "contract.yaml"
    resolve_contract(cfg).__class__.from_dict(override).to_yaml(path)
    assert resolve_contract(cfg, path).control_period == 0.1


def test_every_disagreement_between_contract_and_model_is_named_at_once():
    cfg = get_preset("debug")
    contract = resolve_contract(cfg)
    other = cfg.replace(model=dataclasses.replace(cfg.model, state_dim=cfg.model.state_dim + 2,
                                                  action_dim=cfg.model.action_dim + 1))
    with pytest.raises(ValueError) as err:
        check_compatible(contract, other)
    assert "state_dim" in str(err.value) and "action_dim" in str(err.value)
