"""Meta-World suites as data: the MT50 difficulty groups and MT10 match the installed metaworld,
and every command that takes --tasks takes --suite the same way."""

from __future__ import annotations

import metaworld.env_dict as env_dict
import pytest

from vla_eqm_sim import suites


def test_the_groups_partition_mt50_as_published() -> None:
    sizes = {g: len(suites.suite_tasks(g)) for g in suites.GROUPS}
    assert sizes == {"easy": 28, "medium": 11, "hard": 6, "very_hard": 5}
    mt50 = suites.suite_tasks("mt50")
    assert len(mt50) == len(set(mt50)) == 50
    assert set(mt50) == set(env_dict.MT50_V3)
    assert suites.suite_tasks("mt10") == list(env_dict.MT10_V3)
    assert suites.group_of("pick-place-v3") == "hard"
    assert "lerobot" in suites.suites_source()


def test_expand_takes_suites_and_tasks_keeps_order_and_refuses_unknown_names() -> None:
    assert suites.expand(["reach-v3,hard"]) == ["reach-v3", *suites.suite_tasks("hard")]
    assert suites.expand(["pick-place-v3"], ["hard"]) == suites.suite_tasks("hard")
    assert suites.expand(None, None) == []
    with pytest.raises(ValueError, match="unknown task"):
        suites.expand(["reach-v2"])
    with pytest.raises(ValueError, match="unknown suite"):
        suites.suite_tasks("mt45")


def test_record_eval_sim_and_demo_accept_suite(capsys, tmp_path) -> None:
    from vla_eqm_train.cli import build_parser, main

    for command in ("record", "eval-sim", "demo"):
        args = build_parser([command]).parse_args(
            [command, "--suite", "very_hard"] + (["--out", str(tmp_path)]
                                                 if command == "record" else []))
        assert args.suite == ["very_hard"]
    assert main(["record", "--out", str(tmp_path)]) == 2
    assert "--suite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser(["record"]).parse_args(["record", "--suite", "mt45", "--out", "x"])
