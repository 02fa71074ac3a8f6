"""GaussianDiffusion against closed forms: marginals, Bayes' rule, exact-model samplers, masks and pitfalls."""

import math

import pytest
import torch

from diffusekit.core import GaussianDiffusion, NoiseSchedule, make_timesteps

from .gaussian_oracle import GaussianDataOracle

MU = torch.tensor([1.5, -2.0, 0.3])
STD = torch.tensor([0.5, 1.0, 2.0])


@pytest.fixture(scope="module")
def diffusion():
    return GaussianDiffusion(NoiseSchedule.named("linear", 1000), prediction="eps")


def test_q_sample_marginal_mean_and_variance(diffusion):
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000,), 2.0, dtype=torch.float64)
    for t in (0, 100, 999):
        xt = diffusion.q_sample(
            x0, torch.full((x0.numel(),), t), torch.randn(x0.shape, generator=g, dtype=torch.float64)
        )
        ab = diffusion.schedule.alphas_cumprod[t].item()
        assert xt.mean().item() == pytest.approx(2.0 * math.sqrt(ab), abs=5 * math.sqrt((1 - ab) / x0.numel()) + 1e-6)
        assert xt.var().item() == pytest.approx(1 - ab, rel=0.02)


def test_q_sample_keeps_alpha_bar_precision_for_low_precision_samples(diffusion):
    # bf16 cannot hold sqrt(alpha-bar_0) = 0.99995: coefficients must be applied in fp32 and rounded once.
    x0, noise, t = (
        torch.ones(4, dtype=torch.bfloat16),
        torch.ones(4, dtype=torch.bfloat16),
        torch.zeros(4, dtype=torch.long),
    )
    ab = diffusion.schedule.alphas_cumprod[0]
    exact = (ab.sqrt() + (1 - ab).sqrt()).item()
    assert diffusion.q_sample(x0, t, noise).dtype == torch.bfloat16
    assert diffusion.q_sample(x0, t, noise).float()[0].item() == torch.tensor(exact).to(torch.bfloat16).item()


def test_posterior_matches_bayes_rule(diffusion):
    """q(x_{s}|x_t,x0) ∝ q(x_t|x_s) q(x_s|x0), checked for adjacent and respaced steps on a 1-D grid."""
    x0, xt = torch.tensor([0.7]), torch.tensor([0.2])
    grid = torch.linspace(-4, 4, 40001, dtype=torch.float64)
    sched = diffusion.schedule
    for t, s in ((10, 9), (500, 499), (500, 300), (999, 0)):
        ab_t, ab_s = sched.alphas_cumprod[t], sched.alphas_cumprod[s]
        a_ts = ab_t / ab_s
        log_p = -((xt.double() - a_ts.sqrt() * grid) ** 2) / (2 * (1 - a_ts)) - (
            grid - ab_s.sqrt() * x0.double()
        ) ** 2 / (2 * (1 - ab_s))
        w = torch.softmax(log_p, 0)
        mean_num = (w * grid).sum()
        var_num = (w * (grid - mean_num) ** 2).sum()
        mean, var = diffusion.q_posterior(x0.double(), xt.double(), torch.tensor([t]), torch.tensor([s]))
        assert mean.item() == pytest.approx(mean_num.item(), abs=1e-5)
        assert var.item() == pytest.approx(var_num.item(), rel=1e-4)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_prediction_conversions_round_trip(prediction):
    d = GaussianDiffusion(NoiseSchedule.named("cosine", 1000), prediction=prediction)
    g = torch.Generator().manual_seed(1)
    x0, eps = (
        torch.randn(8, 5, generator=g, dtype=torch.float64),
        torch.randn(8, 5, generator=g, dtype=torch.float64),
    )
    t = torch.randint(0, 1000, (8,), generator=g)
    xt = d.q_sample(x0, t, eps)
    x0_hat, eps_hat = d.to_x0_eps(d.target(x0, eps, t), xt, t)
    torch.testing.assert_close(x0_hat, x0)
    torch.testing.assert_close(eps_hat, eps)


def _affine_moments(diffusion, oracle, timesteps, sampler):
    """Deterministic samplers are affine per coordinate: push the exact x_T marginal through them exactly."""
    mean_T, std_T = oracle.marginal(timesteps[0])
    x = torch.stack([torch.zeros(3), torch.ones(3)]).double()
    out = diffusion.sample(oracle, x, timesteps=timesteps, sampler=sampler)
    slope, offset = out[1] - out[0], out[0]
    return slope * mean_T + offset, slope.abs() * std_T


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp_2m"])
@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_deterministic_samplers_recover_the_data_distribution(sampler, prediction):
    d = GaussianDiffusion(NoiseSchedule.named("linear", 1000), prediction=prediction)
    oracle = GaussianDataOracle(d, MU, STD)
    errors = []
    for n in (10, 50, 200, 1000):
        mean, std = _affine_moments(d, oracle, make_timesteps(1000, n, "trailing"), sampler)
        torch.testing.assert_close(mean, MU.double(), atol=1e-6, rtol=1e-6)
        errors.append((std / STD - 1).abs().max().item())
    assert all(a > b for a, b in zip(errors, errors[1:]))  # converges monotonically
    assert errors[-1] < 0.005  # to the data variance
    if sampler == "dpmpp_2m":
        assert errors[1] < 0.005  # second order: already there at 50 steps
    else:
        assert 3.0 < errors[1] / errors[2] < 5.0  # first order: error ~ 1/n


def test_dpmpp_2m_beats_ddim_at_few_steps():
    d = GaussianDiffusion(NoiseSchedule.named("linear", 1000))
    oracle = GaussianDataOracle(d, MU, STD)
    ts = make_timesteps(1000, 10, "trailing")
    err = {s: (_affine_moments(d, oracle, ts, s)[1] / STD - 1).abs().max().item() for s in ("ddim", "dpmpp_2m")}
    assert err["dpmpp_2m"] < err["ddim"]


@pytest.mark.parametrize("sampler,eta", [("ddpm", 0.0), ("ddim", 1.0)])
def test_ancestral_sampling_over_all_steps_recovers_mean_and_variance(sampler, eta):
    d = GaussianDiffusion(NoiseSchedule.named("linear", 1000))
    oracle = GaussianDataOracle(d, MU, STD)
    g = torch.Generator().manual_seed(3)
    n = 20_000
    x_T = torch.randn(n, 3, generator=g, dtype=torch.float64)
    out = d.sample(oracle, x_T, timesteps=None, sampler=sampler, eta=eta, generator=g)
    assert oracle.calls == 1000
    torch.testing.assert_close(out.mean(0), MU.double(), atol=4 * STD.max().item() / math.sqrt(n), rtol=0)
    torch.testing.assert_close(out.std(0), STD.double(), rtol=0.03, atol=0)


def test_ddim_eta_one_equals_ddpm_with_the_same_noise():
    d = GaussianDiffusion(NoiseSchedule.named("cosine", 1000))
    oracle = GaussianDataOracle(d, MU, STD)
    ts = make_timesteps(1000, 25, "trailing")
    x_T = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = d.sample(oracle, x_T, ts, "ddpm", generator=torch.Generator().manual_seed(5))
    b = d.sample(oracle, x_T, ts, "ddim", eta=1.0, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmpp_2m"])
def test_warm_start_from_an_exact_forward_noised_sample(sampler):
    """x_T may be the state at any level: starting from q(x_k | x0) at k=200 with 20 steps keeps the distribution."""
    d = GaussianDiffusion(NoiseSchedule.named("linear", 1000))
    oracle = GaussianDataOracle(d, MU, STD)
    g = torch.Generator().manual_seed(7)
    x0 = MU + STD * torch.randn(20_000, 3, generator=g)
    k = 200
    x_k = d.q_sample(
        x0.double(), torch.full((x0.shape[0],), k), torch.randn(x0.shape, generator=g, dtype=torch.float64)
    )
    ts = list(range(k, -1, -1)) if sampler == "ddpm" else [int(t) for t in torch.linspace(k, 0, 50).round().long()]
    out = d.sample(oracle, x_k, timesteps=ts, sampler=sampler, generator=g)
    torch.testing.assert_close(out.mean(0), MU.double(), atol=0.03, rtol=0)
    torch.testing.assert_close(out.std(0), STD.double(), rtol=0.03, atol=0)


def test_known_entries_are_reimposed_and_trajectory_is_returned():
    d = GaussianDiffusion(NoiseSchedule.named("quad", 50))
    calls = []

    def model(x, t):
        calls.append(x.clone())
        return torch.zeros_like(x)

    known = torch.arange(12.0).reshape(2, 6)
    mask = torch.tensor([[1, 1, 0, 0, 1, 0]] * 2, dtype=torch.float32)
    out = d.sample(
        model,
        torch.randn(2, 6),
        timesteps=None,
        sampler="ddpm",
        known=known,
        known_mask=mask,
        generator=torch.Generator().manual_seed(0),
        return_trajectory=True,
    )
    assert out.states.shape == (2, 50, 6) and out.x0_preds.shape == (2, 50, 6) and out.timesteps[0] == 49
    torch.testing.assert_close(out.sample[mask.bool()], known[mask.bool()])
    torch.testing.assert_close(out.states[:, -1], out.sample)
    # at the last step (t=0) the model saw the known entries forward-noised to level 0: close to the clean values
    ab0 = d.schedule.alphas_cumprod[0].item()
    assert (calls[-1][mask.bool()] - math.sqrt(ab0) * known[mask.bool()]).abs().max() < 0.1
    # at the first step they were nearly pure noise
    assert (calls[0][mask.bool()] - known[mask.bool()]).abs().mean() > 1.0


def test_sampling_is_reproducible_with_a_generator():
    d = GaussianDiffusion(NoiseSchedule.named("linear", 1000))
    oracle = GaussianDataOracle(d, MU, STD)
    x = torch.randn(4, 3, dtype=torch.float64)
    a = d.sample(oracle, x, 20, "ddpm", generator=torch.Generator().manual_seed(1))
    b = d.sample(oracle, x, 20, "ddpm", generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)


def test_training_loss_is_zero_for_the_exact_target_and_masks_are_respected():
    d = GaussianDiffusion(NoiseSchedule.named("linear", 1000))
    x0 = torch.randn(4, 2, 5)
    noise = torch.randn_like(x0)
    mask = torch.zeros_like(x0)
    mask[:, :, :2] = 1

    def model_right_on_mask(x, t):
        wrong = torch.full_like(noise, 100.0)
        return torch.where(mask.bool(), noise, wrong)

    assert d.training_loss(model_right_on_mask, x0, noise=noise, mask=mask).item() == pytest.approx(0.0, abs=1e-10)
    full = d.training_loss(model_right_on_mask, x0, noise=noise)
    # unmasked mean over all entries: 3/5 of the entries have error (100 - noise)^2
    assert full.item() == pytest.approx(((100 - noise[mask == 0]) ** 2).sum().item() / x0.numel(), rel=1e-5)
    # masked mean divides by the number of masked-in entries, not by all entries
    only_last = torch.zeros_like(x0)
    only_last[:, :, -1] = 1
    val = d.training_loss(model_right_on_mask, x0, noise=noise, mask=only_last)
    assert val.item() == pytest.approx(((100 - noise[..., -1]) ** 2).mean().item(), rel=1e-5)
    assert d.training_loss(model_right_on_mask, x0, noise=noise, mask=torch.zeros_like(x0)).item() == 0.0


def test_training_loss_targets_per_prediction_type_and_min_snr():
    x0 = torch.randn(6, 3)
    noise = torch.randn_like(x0)
    t = torch.tensor([0, 10, 100, 500, 900, 999])
    for prediction in ("eps", "x0", "v"):
        d = GaussianDiffusion(NoiseSchedule.named("cosine", 1000), prediction=prediction)
        exact = lambda x, tt: d.target(x0, noise, tt)  # noqa: E731, B023
        assert d.training_loss(exact, x0, t=t, noise=noise, weighting="min_snr").item() == pytest.approx(0, abs=1e-10)
        zero = lambda x, tt: torch.zeros_like(x)  # noqa: E731
        snr = d.schedule.snr(t)
        w = snr.clamp(max=5.0) / {"eps": snr, "x0": torch.ones_like(snr), "v": snr + 1}[prediction]
        expected = (w[:, None].float() * d.target(x0, noise, t) ** 2).mean()
        assert d.training_loss(zero, x0, t=t, noise=noise, weighting="min_snr").item() == pytest.approx(
            expected.item(), rel=1e-5
        )


def test_zero_terminal_snr_with_eps_prediction_is_rejected():
    s = NoiseSchedule.named("linear", 1000, zero_terminal_snr=True)
    with pytest.raises(ValueError, match="v"):
        GaussianDiffusion(s, prediction="eps")
    d = GaussianDiffusion(s, prediction="v")
    x = d.sample(lambda x, t: torch.zeros_like(x), torch.randn(3, 2), timesteps=10, sampler="ddim")
    assert torch.isfinite(x).all()


def test_ddim_sigma_never_negative_and_step_uses_listed_previous_timestep():
    d = GaussianDiffusion(NoiseSchedule.named("linear", 1000))
    seen = []

    def model(x, t):
        seen.append(int(t[0]))
        return torch.zeros_like(x)

    for spacing in ("linspace", "leading", "trailing"):
        seen.clear()
        ts = make_timesteps(1000, 10, spacing)
        out = d.sample(model, torch.ones(1, 1, dtype=torch.float64), ts, "ddim", eta=1.0)
        assert seen == ts and torch.isfinite(out).all()
    # with a zero model and eta=0, x0_hat = x_t / alpha_t, and the chain must use the *listed* previous alpha-bar
    ts = make_timesteps(1000, 10, "linspace")
    x = torch.ones(1, 1, dtype=torch.float64)
    expected = 1.0
    for t in ts:
        expected = expected / d.schedule.alphas_cumprod[t].sqrt().item()
        expected = expected * 1.0  # next level's alpha_prev * x0 + dir * eps(=0)
        nxt = ts[ts.index(t) + 1] if t != ts[-1] else -1
        expected *= d.schedule.alpha_bar(nxt).sqrt().item()
    assert d.sample(model, x, ts, "ddim").item() == pytest.approx(expected, rel=1e-10)


def test_bad_arguments():
    d = GaussianDiffusion(NoiseSchedule.named("linear", 1000))
    with pytest.raises(ValueError):
        d.sample(lambda x, t: x, torch.zeros(1, 1), sampler="euler")
    with pytest.raises(ValueError):
        d.sample(lambda x, t: x, torch.zeros(1, 1), timesteps=[5, 9])
    with pytest.raises(ValueError):
        d.sample(lambda x, t: x, torch.zeros(1, 1), known=torch.zeros(1, 1))
    with pytest.raises(ValueError, match="shape"):
        d.training_loss(lambda x, t: x[:, :1], torch.zeros(2, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    """Timesteps on the GPU index the CPU schedule (a bug found on an H100: alpha_bar mixed devices)."""
    d = GaussianDiffusion(NoiseSchedule.named("linear", 1000))
    oracle = GaussianDataOracle(d, MU, STD)
    x = torch.randn(8, 3, dtype=torch.float64)
    cpu = d.sample(oracle, x, 20, "dpmpp_2m")
    gpu = d.sample(oracle, x.cuda(), 20, "dpmpp_2m")
    torch.testing.assert_close(gpu.cpu(), cpu)
    t = torch.tensor([3, 500], device="cuda")
    x0 = torch.randn(2, 3, device="cuda")
    assert d.q_sample(x0, t).device.type == "cuda"
