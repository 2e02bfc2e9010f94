"""Normalizers: exact mirrors, the quantile convention, and statistics that live in the weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vla_eqm_ros.normalization import Normalizer


def _data() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal([1.0, -2.0, 10.0], [0.5, 3.0, 0.01], size=(5000, 3)).astype(np.float32)


@pytest.mark.parametrize("mode", ["zscore", "quantile", "identity"])
def test_unnormalize_inverts_normalize(mode):
    norm = Normalizer(3, mode).fit(_data())
    x = torch.from_numpy(_data()[:100])
    assert torch.allclose(norm.unnormalize(norm.normalize(x)), x, atol=1e-4)


def test_zscore_gives_zero_mean_unit_variance():
    norm = Normalizer(3, "zscore").fit(_data())
    z = norm.normalize(torch.from_numpy(_data()))
    assert torch.allclose(z.mean(0), torch.zeros(3), atol=1e-3)
    assert torch.allclose(z.std(0), torch.ones(3), atol=1e-2)


def test_quantile_maps_the_first_and_99th_percentiles_to_minus_one_and_one():
    data = _data()
    norm = Normalizer(3, "quantile").fit(data)
    q = torch.from_numpy(np.quantile(data, [0.01, 0.99], axis=0).astype(np.float32))
    assert torch.allclose(norm.normalize(q), torch.tensor([[-1.0] * 3, [1.0] * 3]), atol=1e-3)


def test_statistics_are_buffers_in_the_state_dict():
    norm = Normalizer(3, "zscore").fit(_data())
    fresh = Normalizer(3, "zscore")
    fresh.load_state_dict(norm.state_dict())
    x = torch.randn(4, 3)
    assert torch.equal(fresh.normalize(x), norm.normalize(x))
    assert set(norm.state_dict()) == {"mean", "std", "q01", "q99"}


def test_a_constant_dimension_does_not_divide_by_zero():
    data = np.ones((10, 2), dtype=np.float32)
    for mode in ("zscore", "quantile"):
        out = Normalizer(2, mode).fit(data).normalize(torch.ones(1, 2))
        assert torch.isfinite(out).all()


def test_non_finite_or_empty_data_is_rejected():
    with pytest.raises(ValueError, match="finite"):
        Normalizer(2).fit(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError):
        Normalizer(2).fit(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="mode"):
        Normalizer(2, "minmax")
