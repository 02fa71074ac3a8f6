"""Echo-DND: the released architecture's wiring (shared timestep embedding, detached MFCM features, the loss terms
and weights), both forward processes' marginals, and the sampler / fusion contract."""

from __future__ import annotations

import math

import pytest
import torch

from diffusekit.core.errors import DataError
from diffusekit.medical.baseline import UNetBaseline
from diffusekit.medical.echo_dnd import DEFAULT_LOSS_WEIGHTS, EchoDND, count_parameters, sample_steps
from diffusekit.medical.hrnet import HRNetMFCM


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(**kwargs) -> EchoDND:
    unet = dict(channels=(8, 16), num_res_blocks=1, attention_levels=(1,), attention_heads=2, norm_groups=4)
    return EchoDND(unet=unet, mfcm=dict(width=2, blocks=1, stem=4, bottlenecks=1), **kwargs)


def batch(b=2, size=16):
    torch.manual_seed(0)
    image = torch.rand(b, 1, size, size)
    mask = torch.zeros(b, 1, size, size)
    mask[:, :, 4:12, 5:11] = 1
    return image, mask


def test_released_wiring():
    model = tiny()
    assert model.bernoulli_unet.time_embed is model.gaussian_unet.time_embed
    assert model.gaussian_unet.out_channels == 2 and model.bernoulli_unet.out_channels == 1  # eps + v; x0 logit
    shared = count_parameters(model.gaussian_unet.time_embed)
    total = count_parameters(model)
    assert total == sum(p.numel() for p in model.parameters())  # shared parameters counted once
    assert count_parameters(model, ["gaussian_unet"]) + count_parameters(model, ["bernoulli_unet"]) > shared
    assert model.gaussian.learn_variance and model.gaussian.clip_x0 == (-1.0, 1.0)
    assert model.bernoulli.prediction == "x0"
    assert model.loss_weights == DEFAULT_LOSS_WEIGHTS and DEFAULT_LOSS_WEIGHTS["scc"] == pytest.approx(10.1)
    with pytest.raises(ValueError, match="must equal the MFCM features"):
        EchoDND(unet=dict(channels=(16, 32)), mfcm=dict(width=2))
    with pytest.raises(ValueError, match="unknown loss weights"):
        tiny(loss_weights={"dice": 1.0})


def test_paper_scale_shapes():
    mfcm = HRNetMFCM()  # W32: features [32, 32, 64] = 128 channels at full resolution, the U-Nets' first width
    features, cal = mfcm(torch.rand(1, 1, 32, 32))
    assert features.shape == (1, 128, 32, 32) and cal.shape == (1, 1, 32, 32)


def test_forward_marginals_of_both_branches():
    model = tiny()
    _, mask = batch(b=64, size=16)
    t = torch.full((64,), model.num_steps - 1)
    y_T = model.bernoulli.q_sample(mask, t)
    assert y_T.mean().item() == pytest.approx(0.5, abs=0.02)  # the prior B(1/2), whatever the mask
    assert y_T[mask == 1].mean().item() == pytest.approx(0.5, abs=0.03)  # the released bug keeps these at ~0
    x_T = model.gaussian.q_sample(mask, t, torch.randn_like(mask))
    assert x_T.mean().item() == pytest.approx(0.0, abs=0.03) and x_T.std().item() == pytest.approx(1.0, abs=0.03)


def test_loss_terms_and_the_mfcm_learns_from_scc_only():
    model = tiny()
    image, mask = batch()
    terms = model(image, mask, mode="loss")
    assert set(terms) == {"loss_mse", "loss_vb_gauss", "loss_bce", "loss_vb_bern", "loss_scc"}
    assert all(torch.isfinite(v) and v >= 0 for v in terms.values())
    # the SCC term is 10.1 x MSE(cal, mask)
    _, cal = model.mfcm(image)
    assert terms["loss_scc"].item() == pytest.approx(10.1 * torch.mean((cal - mask) ** 2).item(), rel=1e-5)
    diffusion_terms = sum(v for k, v in terms.items() if k != "loss_scc")
    diffusion_terms.backward()
    assert all(p.grad is None for p in model.mfcm.parameters())  # features are detached
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.gaussian_unet.parameters())
    model.zero_grad()
    terms = model(image, mask, mode="loss")
    terms["loss_scc"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.mfcm.parameters())


def test_segment_contract_and_reproducibility():
    model = tiny().eval()
    image, _ = batch(b=3)
    seg = model.segment(image, steps=4, samples=2, generator=torch.Generator().manual_seed(5))
    assert seg.probability.shape == (3, 1, 16, 16) and seg.uncertainty.shape == (3, 1, 16, 16)
    assert seg.gaussian.shape == (2, 3, 1, 16, 16) and seg.bernoulli.shape == (2, 3, 1, 16, 16)
    assert 0 <= seg.probability.min() and seg.probability.max() <= 1 and seg.uncertainty.min() >= 0
    assert seg.steps == 4 and seg.evaluations == 2 * 2 * 4
    again = model.segment(image, steps=4, samples=2, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(seg.probability, again.probability)
    for sampler in ("ddpm", "dpmpp_2m"):
        out = model.segment(image, steps=3, samples=1, gaussian_sampler=sampler, bernoulli_sampler="ancestral")
        assert torch.isfinite(out.probability).all()
    staple = model.segment(image, steps=2, samples=3, aggregation="staple")
    assert staple.probability.shape == (3, 1, 16, 16)


def test_sample_steps():
    assert sample_steps(1000, None) == list(range(999, -1, -1))
    assert sample_steps(1000, 1000) == list(range(999, -1, -1))
    steps = sample_steps(1000, 10)
    assert len(steps) == 10 and steps[0] == 999 and steps == sorted(steps, reverse=True)


def test_training_reduces_the_loss():
    torch.manual_seed(0)
    model = tiny()
    image, mask = batch(b=4)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def total() -> torch.Tensor:
        torch.manual_seed(1)  # the same t and noise each time: a fair before/after comparison
        return sum(model(image, mask, mode="loss").values())

    before = total().item()
    for _ in range(40):
        opt.zero_grad()
        sum(model(image, mask, mode="loss").values()).backward()
        opt.step()
    assert total().item() < 0.7 * before and math.isfinite(before)


def test_baseline_model():
    model = UNetBaseline(channels=(4, 8, 16), num_res_units=1)
    image, mask = batch(size=16)
    assert model(image, mask, mode="loss")["loss"] > 0
    probability = model(image, mode="predict")
    assert probability.shape == (2, 1, 16, 16) and 0 <= probability.min() <= probability.max() <= 1


def test_validation_step_feeds_the_metric_twin():
    """mmengine's ValLoop: val_step -> one {pred, gt} pair per image -> SegmentationMetric (Dice of the fused map)."""
    from diffusekit.medical.metrics import SegmentationMetric

    model = tiny(val_sampling=dict(steps=2)).eval()
    image, mask = batch(b=3)
    samples = model.val_step({"image": image, "mask": mask, "index": torch.arange(3)})
    assert len(samples) == 3 and samples[0]["pred"].shape == (16, 16) and samples[0]["pred"].dtype == torch.bool
    seg = model.segment(image, generator=torch.Generator().manual_seed(10), **model.val_sampling)
    assert torch.equal(samples[1]["pred"], seg.probability[1, 0] >= 0.5)  # the documented fast setting
    assert torch.equal(samples[2]["gt"], mask[2, 0] > 0.5)
    metric = SegmentationMetric()
    metric.process({}, samples)
    assert 0.0 <= metric.compute_metrics(metric.results)["dice"] <= 1.0
    baseline = UNetBaseline(channels=(4, 8, 16), num_res_units=1).eval()
    pairs = baseline.test_step({"image": image, "mask": mask})
    assert torch.equal(pairs[0]["pred"], baseline(image, mode="predict")[0, 0] >= 0.5)


def test_unknown_validation_sampling_key():
    with pytest.raises(DataError, match="did you mean 'samples'"):
        tiny(val_sampling=dict(sample=2))
