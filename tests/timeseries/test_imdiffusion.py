"""ImDiffusion: grating masks, the target-only loss and its mask-type ids, stitching, per-step scores, voting,
the oracle search and the PyOD-style detector end to end (a tiny stand-in denoiser, not ``models.ImDiffusionNet``)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from mmengine.registry import MODELS
from torch import nn
from torch.nn import functional as F

from diffusekit.core.schedule import NoiseSchedule
from diffusekit.timeseries.data import WindowDataset, window_starts
from diffusekit.timeseries.ensemble import (
    calibrate_votes,
    decision_scores,
    ensemble_votes,
    oracle_search,
    score_windows,
    stitch,
    stitch_owner,
    vote_labels,
    vote_thresholds,
)
from diffusekit.timeseries.imdiffusion import ImDiffusion, ImDiffusionDetector, grating_masks, training_masks
from diffusekit.timeseries.metrics import f1_point_adjusted


class TinyNet(nn.Module):
    """Same signature as ImDiffusionNet: (x_t (B,K,L), t (B,), mask_type (B,)) -> eps (B,K,L). An MLP over the
    flattened window (fixed K and L) with step and mask-type embeddings, wrapped in EDM-style preconditioning
    (Karras et al. 2022, with sigma = sigma_t / alpha_t) so that a few hundred CPU steps give a usable x0 also at high
    noise, where a plain eps output divides its error by alpha_t."""

    def __init__(self, num_features: int, window: int = 16, hidden: int = 128, data_std: float = 6.0):
        super().__init__()
        alpha_bar = NoiseSchedule.named("quad", 50).alphas_cumprod.float()
        ratio = ((1.0 - alpha_bar) / alpha_bar).sqrt()  # the VE sigma of each level
        norm = (ratio**2 + data_std**2).sqrt()
        self.register_buffer("c_in", 1.0 / (alpha_bar.sqrt() * norm))
        self.register_buffer("c_x", ratio / (alpha_bar.sqrt() * norm**2))
        self.register_buffer("c_out", data_std / norm)
        size = num_features * window
        self.inp = nn.Linear(size, hidden)
        self.t_emb = nn.Embedding(50, hidden)
        self.m_emb = nn.Embedding(2, hidden)
        self.mid = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, size)

    def forward(self, x: torch.Tensor, t: torch.Tensor, mask_type: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.inp(x.flatten(1) * self.c_in[t, None]) + self.t_emb(t) + self.m_emb(mask_type))
        f = self.out(F.silu(self.mid(h))).view_as(x)
        return self.c_x[t, None, None] * x - self.c_out[t, None, None] * f


class ParamNet(nn.Module):
    """Outputs a learnable tensor (the gradient shows which entries the loss uses) and records the mask types."""

    def __init__(self, shape: tuple[int, int, int]):
        super().__init__()
        self.p = nn.Parameter(torch.randn(shape))
        self.mask_types: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor, mask_type: torch.Tensor) -> torch.Tensor:
        self.mask_types.append(mask_type.clone())
        return self.p + 0 * x


@pytest.mark.parametrize("length,blocks", [(100, 10), (100, 4), (16, 4), (17, 4), (23, 5), (10, 3), (7, 7)])
def test_grating_masks_complementary(length, blocks):
    m0, m1 = grating_masks(length, blocks)
    assert m0.shape == (length,)
    assert torch.equal(m0 + m1, torch.ones(length)) and torch.equal(m0 * m1, torch.zeros(length))
    # blocks of (nearly) equal size, alternating, type 0 conditioning on the first (even) block
    runs = [len(list(g)) for _, g in itertools.groupby(m0.tolist())]
    assert len(runs) == blocks and max(runs) - min(runs) <= 1 and m0[0] == 1
    with pytest.raises(ValueError):
        grating_masks(length, 1)


def _loss_grad(strategy: str, seed: int):
    shape = (6, 3, 20)
    net = ParamNet(shape)
    model = ImDiffusion(net, train_strategy=strategy, train_blocks=4)
    x = torch.rand(shape)
    loss = model(x, mode="loss", generator=torch.Generator().manual_seed(seed))["loss"]
    loss.backward()
    return (net.p.grad != 0).float(), net.mask_types[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grating_loss_respects_mask_and_id_matches(seed):
    used, mask_type = _loss_grad("grating", seed)
    m0, m1 = grating_masks(20, 4)
    for b in range(used.shape[0]):
        expected_targets = m1 if mask_type[b] == 0 else m0  # type 0 conditions on m0 and imputes m1
        assert torch.equal(used[b], expected_targets.expand(3, 20)), "loss must use the targets exactly"
    assert set(mask_type.tolist()) <= {0, 1}


def test_random_strategy_id_matches_majority_of_targets():
    used, mask_type = _loss_grad("random", 0)
    m0, m1 = grating_masks(20, 4)
    frac = 1 - used.mean().item()
    assert 0.5 < 1 - frac < 0.9  # about 70 % targets
    for b in range(used.shape[0]):
        in0, in1 = (used[b] * m1).sum() / (3 * m1.sum()), (used[b] * m0).sum() / (3 * m0.sum())
        assert mask_type[b] == int(in1 > in0)
    # the same with training_masks directly: cond + target = 1 and ids follow the rule
    cond, ids = training_masks((50, 2, 20), "random", 4, 0.7, torch.Generator().manual_seed(3))
    target = 1 - cond
    expect = ((target * m0).sum((1, 2)) / m0.sum() > (target * m1).sum((1, 2)) / m1.sum()).long()
    assert torch.equal(ids, expect)


def test_model_registry_predict_shapes_and_dict_batches():
    model = MODELS.build(dict(type="ImDiffusion", denoiser=dict(type=TinyNet, num_features=3), infer_blocks=4))
    data = WindowDataset(np.random.rand(40, 3).astype(np.float32), window=16, stride=8)
    batch = {key: torch.stack([data[i][key] for i in range(len(data))]) for key in data[0]}
    assert torch.isfinite(model(**batch, mode="loss")["loss"])
    out = model(**batch, mode="predict", generator=torch.Generator().manual_seed(0))
    assert out.imputed.shape == (len(data), 50, 3, 16) and torch.isfinite(out.imputed).all()
    assert out.timesteps[0] == 49 and out.timesteps[-1] == 0


@pytest.mark.parametrize("length,window,stride", [(100, 10, 5), (103, 10, 5), (57, 16, 8), (64, 16, 8), (31, 8, 3)])
def test_stitching_scores_every_index_once(length, window, stride):
    starts = window_starts(length, window, stride, tail=True)
    windows = starts[:, None] + np.arange(window)[None]  # each window holds its absolute time indices
    assert np.array_equal(stitch(windows, starts, length), np.arange(length))
    owner, offset = stitch_owner(length, window, starts)
    assert np.array_equal(starts[owner] + offset, np.arange(length))
    assert ((offset >= 0) & (offset < window)).all()


def test_stitching_is_the_released_middle_half_plus_head_and_tail():
    starts = window_starts(260, 100, 50, tail=True)  # 0, 50, 100, 150, 160 (tail window)
    owner, offset = stitch_owner(260, 100, starts)
    assert (offset[:25] == np.arange(25)).all() and (owner[:25] == 0).all()  # the first window's head
    inner = owner[25:150]
    assert ((offset[25:150] >= 25) & (offset[25:150] < 75)).all() and np.array_equal(np.unique(inner), [0, 1, 2])
    assert owner[-1] == len(starts) - 1 and offset[-1] == 99  # the tail is scored
    with pytest.raises(ValueError):
        stitch_owner(260, 100, window_starts(260, 100, 50, tail=False))


@pytest.mark.parametrize("reduce", ["max", "sum"])
def test_step_scores_peak_at_planted_spike(reduce):
    rng = np.random.default_rng(0)
    length, k, window, stride = 90, 4, 20, 10
    series = rng.random((k, length))
    series[2, 47] += 5.0
    starts = window_starts(length, window, stride)
    inputs = np.stack([series[:, s : s + window] for s in starts])
    clean = np.stack([np.clip(series[:, s : s + window], 0, 1) for s in starts])
    imputed = clean[:, None] + 0.05 * rng.standard_normal((len(starts), 6, k, window))  # (W, S, K, L)
    scores = score_windows(imputed, inputs, starts, length, reduce)
    assert scores.step_scores.shape == (6, length) and scores.feature_scores.shape == (k, length)
    assert (scores.step_scores.argmax(axis=1) == 47).all()
    assert scores.feature_scores[:, 47].argmax() == 2
    assert scores.step_errors.shape == (6,)


def test_vote_threshold_monotone_in_xi_and_p0():
    rng = np.random.default_rng(1)
    step_scores = rng.random((30, 500)) * np.linspace(1, 2, 30)[:, None]
    step_errors = (step_scores**2).mean(axis=1)
    steps = range(0, 30, 3)
    votes = ensemble_votes(step_scores, vote_thresholds(step_scores, step_errors, 0.1, steps), steps)
    counts = [vote_labels(votes, xi).sum() for xi in range(10)]
    assert all(a >= b for a, b in zip(counts, counts[1:])) and counts[0] > counts[-1]
    totals = [
        ensemble_votes(step_scores, vote_thresholds(step_scores, step_errors, p0, steps), steps).sum()
        for p0 in (0.0, 0.01, 0.05, 0.1, 0.3)
    ]
    assert all(a <= b for a, b in zip(totals, totals[1:])) and totals[0] == 0
    # decision scores: d >= xi + 1 is exactly V > xi
    cal = calibrate_votes(step_scores, step_errors, 0.1, steps)
    d = decision_scores(step_scores, cal.thresholds, steps)
    v = ensemble_votes(step_scores, cal.thresholds, steps)
    for xi in range(10):
        assert np.array_equal(d >= xi + 1, v > xi)


def test_oracle_search_is_the_best_of_its_grid():
    rng = np.random.default_rng(2)
    labels = np.zeros(400, dtype=int)
    labels[100:120] = labels[300:310] = 1
    step_scores = rng.random((30, 400)) + 0.8 * labels * rng.random((30, 1))
    step_errors = (step_scores**2).mean(axis=1)
    steps, p0s = tuple(range(0, 30, 3)), (0.01, 0.02, 0.05, 0.1)
    result = oracle_search(step_scores, step_errors, labels, steps, p0s)
    brute = max(
        f1_point_adjusted(
            labels,
            vote_labels(ensemble_votes(step_scores, vote_thresholds(step_scores, step_errors, p0, steps), steps), xi),
        )
        for p0 in p0s
        for xi in range(10)
    )
    assert result.f1 == pytest.approx(brute)
    assert f1_point_adjusted(labels, result.labels) == pytest.approx(result.f1)


def _series(length: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(length)[:, None]
    return np.sin(2 * np.pi * t / np.array([12.0, 20.0, 30.0])) + 0.05 * rng.standard_normal((length, 3))


def test_detector_end_to_end_flags_planted_anomaly():
    rng = np.random.default_rng(0)
    train, test = _series(600, rng), _series(300, rng)
    test[150:162, 1] += 3.0
    det = ImDiffusionDetector(
        window=16,
        iterations=300,
        batch_size=32,
        lr=3e-3,
        net_factory=lambda k: TinyNet(k),
        model_kwargs=dict(train_blocks=4, infer_blocks=4),
        seed=0,
    )
    det.fit(train)
    assert det.decision_scores_.shape == (600,) and det.labels_.shape == (600,)
    assert det.threshold_ == det.calibration_.xi + 1
    scores = det.decision_function(test)
    labels = det.predict(test)
    assert scores.shape == (300,) and set(np.unique(labels)) <= {0, 1}
    truth = np.zeros(300, dtype=int)
    truth[150:162] = 1
    assert labels[150:162].any(), "the planted anomaly must be flagged"
    assert labels.sum() < 40, "few false alarms"
    assert f1_point_adjusted(truth, labels) > 0.6
    assert scores[150:162].max() >= np.quantile(np.delete(scores, np.arange(140, 172)), 0.99)
    hits = [iv for iv in det.intervals(test) if iv[0] < 162 and iv[1] > 150]
    assert hits and hits[0][3][0] == 1  # localised to the shifted feature
    assert all(start < end and score >= det.threshold_ for start, end, score, _ in det.intervals(test))


class ConstantX0(nn.Module):
    """The eps that makes every x0 prediction the constant ``c`` (x̂0 = (x - sqrt(1-ab) eps) / sqrt(ab)), so any
    deterministic sampler must end exactly at ``c`` on the imputed entries."""

    def __init__(self, c: float):
        super().__init__()
        self.c = c
        self.alpha_bar = NoiseSchedule.named("quad", 50, beta_start=1e-4, beta_end=0.5).alphas_cumprod.float()

    def forward(self, x, t, mask_type):
        ab = self.alpha_bar[t].view(-1, 1, 1)
        return (x - ab.sqrt() * self.c) / (1 - ab).sqrt()


def test_fast_ddim_scoring_has_the_asked_levels_and_lands_on_the_x0_prediction():
    model = ImDiffusion(ConstantX0(c=4.0), sample_steps=5, sampler="ddim", value_scale=20.0).eval()
    x = torch.rand(3, 2, 16)
    out = model.impute(x, generator=torch.Generator().manual_seed(0))
    assert out.timesteps == [49, 39, 29, 19, 9] and out.imputed.shape == (3, 5, 2, 16)
    # both grating passes impute their own half; the merge keeps the imputed entries only: all equal c / value_scale
    torch.testing.assert_close(out.imputed[:, -1], torch.full_like(x, 4.0 / 20.0))
    released = ImDiffusion(ConstantX0(c=4.0), value_scale=20.0).eval().impute(x)
    assert released.imputed.shape[1] == 50 and released.timesteps[-1] == 0
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        ImDiffusion(ConstantX0(c=4.0), sampler="euler")


def test_bf16_scoring_is_close_to_fp32_but_really_runs_in_bf16():
    from diffusekit.timeseries.models import ImDiffusionNet
    from diffusekit.timeseries.pipeline import Settings, score_series

    torch.manual_seed(0)
    net = ImDiffusionNet(num_features=3, channels=16, layers=1, heads=2)
    nn.init.normal_(net.output_projection2.weight, std=0.5)  # CSDI zero-initialises it: the output would be 0
    model = ImDiffusion(net, sample_steps=4, sampler="ddim").eval()
    values = np.random.default_rng(0).random((80, 3)).astype(np.float32)
    scores = {
        p: score_series(model, values, Settings(window=16, steps=(0, 1), precision=p), progress=False).step_scores
        for p in ("fp32", "bf16")
    }
    difference = np.abs(scores["fp32"] - scores["bf16"]).max()
    assert 0 < difference < 0.05 * np.abs(scores["fp32"]).max()
