"""One schema maps every tunable setting to its config field; nothing mutates a shared config."""

from __future__ import annotations

import pytest

from vla_eqm_ros import settings
from vla_eqm_ros.config import get_preset
from vla_eqm_ros.model import PI0EqMModel
from vla_eqm_ros.policy import Policy


def test_every_setting_reads_and_writes_the_field_it_names() -> None:
    cfg = get_preset("debug")
    new = settings.apply(cfg, {"tau": 0.02, "k_max": 9.0, "warm_start": "copy",
                               "warm_start_mode": "none", "fm_steps": 4, "execute_steps": 2})
    assert new.solver.tau == 0.02 and new.solver.k_max == 9 and isinstance(new.solver.k_max, int)
    assert new.warm_start.mode == "none", "the alias is the same setting, applied in order"
    assert new.fm.steps == 4 and new.execute_steps == 2
    assert settings.values(new)["tau"] == 0.02
    assert cfg.solver.tau != 0.02, "apply returns a copy"


def test_bad_values_unknown_names_and_another_decoder_are_refused_with_a_reason() -> None:
    cfg = get_preset("debug")
    assert "tau" in settings.check(cfg, {"tau": -1.0})
    assert "did you mean 'k_max'" in settings.check(cfg, {"kmax": 3})
    other = "fm" if cfg.decoder == "eqm" else "eqm"
    assert "trained for" in settings.check(cfg, {"decoder": other})
    assert settings.check(cfg, {"decoder": cfg.decoder}) == ""


def test_the_node_parameter_tables_derive_from_the_schema() -> None:
    from vla_eqm_ros.nodes import parameters
    from vla_eqm_train.demo.run import REPORTED_PARAMS

    assert set(parameters.POLICY_KEYS) == set(settings.FIELDS) - set(settings.FIXED)
    cfg = settings.apply(get_preset("debug"), {"tau_by_goal": ["0.05=press the button"]})
    ckpt = parameters.checkpoint_values(cfg, 0.05)
    assert set(ckpt) == set(settings.FIELDS) | {"control_rate_hz"}
    assert {s.name for s in parameters.SPECS if s.from_checkpoint} == set(ckpt)
    assert ckpt["tau_by_goal"] == ["0.05=press the button"]
    # an empty string array stays unset: ROS cannot type an empty list
    assert "tau_by_goal" not in parameters.checkpoint_values(get_preset("debug"), 0.05)
    assert set(settings.FIELDS) <= set(REPORTED_PARAMS)


def test_a_policy_retuned_on_a_shared_model_leaves_the_model_and_its_siblings_alone() -> None:
    model = PI0EqMModel(get_preset("debug"))
    base = model.config
    a, b = Policy(model, seed=0), Policy(model, seed=0)
    a.update_solver(tau=0.5, warm_start="none")
    assert model.config is base and b.config.solver.tau == base.solver.tau
    with pytest.raises(ValueError, match="did you mean"):
        a.update_solver(kmax=3)
