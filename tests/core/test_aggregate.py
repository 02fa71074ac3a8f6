"""aggregate() and STAPLE on hand-made inputs and on synthetic raters with known performance."""

from __future__ import annotations

import math

import pytest
import torch

from diffusekit.core.aggregate import aggregate, binary_entropy, staple


def _raters(truth: torch.Tensor, sens, spec, seed: int) -> torch.Tensor:
    """Decisions (raters, *truth.shape): rater j says 1 on truth 1 with prob sens[j], 0 on truth 0 with spec[j]."""
    sens, spec = torch.tensor(sens), torch.tensor(spec)
    u = torch.rand((len(sens),) + truth.shape, generator=torch.Generator().manual_seed(seed))
    view = (-1,) + (1,) * truth.ndim
    hit = (u < sens.view(view)).float()
    false_alarm = (u >= spec.view(view)).float()
    return torch.where(truth.bool(), hit, false_alarm)


def test_mean_and_population_std():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])
    fused, unc = aggregate(x, "mean")
    torch.testing.assert_close(fused, torch.tensor([3.0, 5.0]))
    torch.testing.assert_close(unc, torch.tensor([math.sqrt(8 / 3), math.sqrt(26 / 3)]))
    fused, unc = aggregate(x.T, "mean", dim=1)
    torch.testing.assert_close(fused, torch.tensor([3.0, 5.0]))
    assert torch.equal(aggregate(x[:1], "mean")[1], torch.zeros(2))  # one sample: zero spread, not NaN


def test_median_and_median_absolute_deviation():
    odd = torch.tensor([[1.0], [100.0], [2.0]])
    fused, mad = aggregate(odd, "median")
    assert fused.item() == 2.0 and mad.item() == 1.0  # |dev| = 1, 98, 0
    even = torch.tensor([[3.0, 1.0, 100.0, 2.0]])
    fused, mad = aggregate(even, "median", dim=1)
    assert fused.item() == 2.5 and mad.item() == 1.0  # |dev| = 0.5, 1.5, 97.5, 0.5


def test_majority_vote_and_vote_entropy():
    # 3 samples of 4 pixels (probabilities, binarised at 0.5)
    x = torch.tensor([[0.9, 0.1, 0.6, 0.2], [0.8, 0.7, 0.4, 0.1], [0.2, 0.6, 0.3, 0.4]])
    fused, unc = aggregate(x, "vote")
    assert fused.tolist() == [1.0, 1.0, 0.0, 0.0]
    h = -(2 / 3) * math.log2(2 / 3) - (1 / 3) * math.log2(1 / 3)
    torch.testing.assert_close(unc, torch.tensor([h, h, h, 0.0]))
    tie = torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    fused, unc = aggregate(tie, "vote")
    assert fused.item() == 0.0 and unc.item() == pytest.approx(1.0)  # tie: background, 1 bit
    fused, _ = aggregate(x, "vote", threshold=0.15)
    assert fused.tolist() == [1.0, 1.0, 1.0, 1.0]
    torch.testing.assert_close(binary_entropy(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([0.0, 1.0, 0.0]))


def test_staple_e_step_is_bayes_rule():
    d = _raters(torch.cat([torch.ones(25), torch.zeros(25)]), [0.7, 0.8, 0.6], [0.9, 0.6, 0.75], seed=0)
    p, q, f = 0.9, 0.9, 0.3
    w, _, _ = staple(d, max_iter=0, init=p, prior=f)  # no EM iteration: one E-step from p = q = 0.9
    k = d.sum(0)  # raters saying 1
    a = f * p**k * (1 - p) ** (3 - k)
    b = (1 - f) * q ** (3 - k) * (1 - q) ** k
    torch.testing.assert_close(w, a / (a + b))


def test_staple_recovers_known_sensitivity_and_specificity():
    truth = (torch.rand(20000, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    sens, spec = [0.95, 0.9, 0.8, 0.7, 0.85], [0.9, 0.95, 0.85, 0.8, 0.97]
    d = _raters(truth, sens, spec, seed=2)
    w, p, q = staple(d)
    assert (p - torch.tensor(sens)).abs().max() < 0.03
    assert (q - torch.tensor(spec)).abs().max() < 0.03
    assert ((w >= 0.5).float() == truth).float().mean() > 0.97


def test_staple_weights_a_good_rater_above_two_poor_ones_and_is_not_mean_squared():
    # one good rater (0.98 / 0.98) against two poor, independent ones (0.65 / 0.65): majority vote follows the
    # poor pair whenever both err; STAPLE learns whom to trust.
    truth = (torch.rand(5000, generator=torch.Generator().manual_seed(3)) < 0.3).float()
    d = _raters(truth, [0.98, 0.65, 0.65], [0.98, 0.65, 0.65], seed=4)
    staple_fused, staple_unc = aggregate(d, "staple")
    vote_fused, _ = aggregate(d, "vote")
    acc_staple = (staple_fused == truth).float().mean().item()
    acc_vote = (vote_fused == truth).float().mean().item()
    assert acc_staple > 0.95 and acc_staple > acc_vote + 0.08, (acc_staple, acc_vote)
    w, p, q = staple(d)
    assert p[0] > p[1:].max() and q[0] > q[1:].max()
    # the MedSegDiff/Echo-DND "staple" is (mean of samples)^2: different values and a worse fused map
    mean_sq = d.mean(0) ** 2
    assert (w - mean_sq).abs().max() > 0.3
    assert ((mean_sq >= 0.5).float() == truth).float().mean().item() < acc_staple - 0.08
    torch.testing.assert_close(staple_unc, binary_entropy(w))


def test_staple_batches_are_independent_problems():
    truth = (torch.rand(2, 3000, generator=torch.Generator().manual_seed(5)) < 0.5).float()
    first = _raters(truth[0], [0.95, 0.6, 0.9], [0.95, 0.6, 0.9], seed=6)
    second = _raters(truth[1], [0.6, 0.95, 0.9], [0.6, 0.95, 0.9], seed=7)
    both = torch.stack([first, second], dim=1)  # (raters, batch, voxels)
    w, p, q = staple(both, batch_ndim=1)
    assert p.shape == (2, 3) and w.shape == (2, 3000)
    for i, single in enumerate((first, second)):
        w_i, p_i, q_i = staple(single)
        torch.testing.assert_close(w[i], w_i)
        torch.testing.assert_close(p[i], p_i)
    assert p[0, 0] > p[0, 1] and p[1, 1] > p[1, 0]
    # raters on another dim: (batch, raters, H, W)
    moved = both.movedim(0, 1).reshape(2, 3, 50, 60)
    w_moved, p_moved, _ = staple(moved, dim=1, batch_ndim=1)
    torch.testing.assert_close(w_moved.reshape(2, 3000), w)
    torch.testing.assert_close(p_moved, p)


def test_unanimous_raters_and_bad_inputs():
    d = torch.tensor([[1.0, 0.0, 1.0, 0.0]] * 3)
    fused, unc = aggregate(d, "staple")
    assert torch.equal(fused, d[0]) and unc.max() < 1e-3
    with pytest.raises(ValueError):
        staple(torch.full((3, 4), 0.5))
    with pytest.raises(ValueError):
        aggregate(d, "average")
