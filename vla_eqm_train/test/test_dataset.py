"""The cache: padding masks at episode ends, split by episode, statistics, normalization."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from bag_factory import command_of, contract, write_bag

from vla_eqm_ros.config import get_preset
from vla_eqm_ros.model import PI0EqMModel
from vla_eqm_train.data.bags import read_episode
from vla_eqm_train.data.dataset import ChunkDataset, DatasetError, split_episodes, write_cache
from vla_eqm_train.training.trainer import fit_normalizers


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    c = contract()
    eps = [read_episode(write_bag(root / f"bag{i}", steps=n, goal=f"goal {i}", task=f"task{i}"),
                        c) for i, n in enumerate((5, 3, 7, 4))]
    meta = write_cache(root / "cache", eps, c, val_fraction=0.25, seed=0)
    return root / "cache", meta


def test_chunks_are_padded_at_the_episode_end_and_never_cross_into_the_next(cache):
    root, meta = cache
    data = ChunkDataset(root, horizon=4)
    first = meta["episodes"][0]  # 5 frames: frame 3 has 2 real actions, then padding
    actions, mask = data.chunk_targets(np.array([first["start"] + 3]))
    assert mask[0].tolist() == [True, True, False, False]
    np.testing.assert_allclose(actions[0, :2], [command_of(3), command_of(4)])
    np.testing.assert_allclose(actions[0, 2:], [command_of(4), command_of(4)])  # last repeated
    second = meta["episodes"][1]
    assert second["start"] == first["start"] + first["length"]  # contiguous in the cache


def test_a_chunk_inside_an_episode_is_fully_valid(cache):
    root, meta = cache
    data = ChunkDataset(root, horizon=3)
    third = meta["episodes"][2]
    actions, mask = data.chunk_targets(np.array([third["start"] + 1]))
    assert mask.all()
    np.testing.assert_allclose(actions[0], [command_of(1), command_of(2), command_of(3)])


def test_batches_carry_each_frames_own_goal_and_image(cache):
    root, meta = cache
    data = ChunkDataset(root, horizon=2)
    batch = data.batch(np.array([len(data) - 1, 0]))
    assert batch.goals == [meta["episodes"][-1]["goal"], meta["episodes"][0]["goal"]]
    assert batch.images["corner"][0, 0, 0, 0] == meta["episodes"][-1]["length"] - 1
    assert batch.images["corner"][1, 0, 0, 0] == 0


def test_train_and_validation_split_by_whole_episodes(cache):
    root, meta = cache
    train, val = ChunkDataset(root, 2, "train"), ChunkDataset(root, 2, "val")
    assert len(train) + len(val) == meta["frames"]
    ep = np.asarray(train.episode_index)
    assert set(ep[train.indices]).isdisjoint(set(ep[val.indices]))
    assert sorted(meta["split"]["train"] + meta["split"]["val"]) == [0, 1, 2, 3]


def test_split_keeps_one_validation_episode_and_is_deterministic():
    assert split_episodes(2, 0.1, 0) == split_episodes(2, 0.1, 0)
    train, val = split_episodes(2, 0.1, 0)
    assert len(val) == 1 and len(train) == 1
    assert split_episodes(5, 0.0, 0) == ([0, 1, 2, 3, 4], [])
    with pytest.raises(ValueError):
        split_episodes(5, 1.0, 0)


def test_statistics_are_computed_on_training_episodes_only(cache):
    root, meta = cache
    data = ChunkDataset(root, 1, "train")
    actions = np.asarray(data.actions)[data.indices]
    np.testing.assert_allclose(meta["stats"]["action"]["mean"], actions.mean(0), rtol=1e-6)
    np.testing.assert_allclose(meta["stats"]["action"]["std"], actions.std(0), rtol=1e-6)
    state = np.asarray(data.state)[data.indices]
    np.testing.assert_allclose(meta["stats"]["state"]["max"], state.max(0), rtol=1e-6)
    on_disk = json.loads((root / "meta.json").read_text())
    assert on_disk["hash"] == meta["hash"] and len(meta["hash"]) == 64


def test_normalizers_fitted_from_the_cache_map_training_actions_to_zero_mean_unit_std(cache):
    root, meta = cache
    data = ChunkDataset(root, 1, "train")
    debug = get_preset("debug")
    model = PI0EqMModel(debug.replace(model=dataclasses.replace(debug.model, state_dim=5)))
    fit_normalizers(model, meta["stats"])
    actions = torch.from_numpy(np.asarray(data.actions)[data.indices])
    z = model.action_normalizer.normalize(actions)
    np.testing.assert_allclose(z.mean(0).numpy()[:3], 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(0, unbiased=False).numpy()[:3], 1.0, atol=1e-4)
    back = model.action_normalizer.unnormalize(z)
    np.testing.assert_allclose(back.numpy(), actions.numpy(), atol=1e-5)


def test_the_same_bags_give_the_same_hash_and_a_change_gives_another(tmp_path):
    c = contract()
    a = write_cache(tmp_path / "a", [read_episode(write_bag(tmp_path / "x", 3), c)], c)
    b = write_cache(tmp_path / "b", [read_episode(write_bag(tmp_path / "y", 3), c)], c)
    d = write_cache(tmp_path / "d", [read_episode(write_bag(tmp_path / "z", 4), c)], c)
    assert a["hash"] == b["hash"] != d["hash"]


def test_opening_a_folder_that_is_not_a_cache_says_how_to_build_one(tmp_path):
    with pytest.raises(DatasetError, match="vla-eqm dataset build"):
        ChunkDataset(tmp_path, horizon=2)
