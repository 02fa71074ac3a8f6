"""Learned-range variance (Nichol & Dhariwal 2021): the interpolation's endpoints, the VB term against closed
forms, the decoder NLL against scipy, and sampling / training invariants."""

import math

import pytest
import torch
from scipy.stats import norm

from diffusekit.core import GaussianDiffusion, NoiseSchedule


@pytest.fixture
def diffusion():
    return GaussianDiffusion(NoiseSchedule.named("linear", 1000), learn_variance=True)


def _beta_tilde(ab, t, t_prev):
    beta = 1 - ab[t] / ab[t_prev]
    return beta, beta * (1 - ab[t_prev]) / (1 - ab[t])


def test_log_variance_endpoints_and_respaced_steps(diffusion):
    ab = diffusion.schedule.alphas_cumprod
    v = torch.ones(1, 1, 2, 2)
    t, t_prev = torch.tensor([500]), torch.tensor([450])
    beta, tilde = _beta_tilde(ab, 500, 450)
    assert diffusion.model_log_variance(v, t, t_prev).flatten()[0].item() == pytest.approx(math.log(beta))
    assert diffusion.model_log_variance(-v, t, t_prev).flatten()[0].item() == pytest.approx(math.log(tilde))
    half = diffusion.model_log_variance(0 * v, t, t_prev).flatten()[0].item()
    assert half == pytest.approx(0.5 * (math.log(beta) + math.log(tilde)))
    # into the clean level beta~ = 0 is clipped to the first step's beta~
    _, tilde_first = _beta_tilde(ab, 1, 0)
    last = diffusion.model_log_variance(-v, torch.tensor([0]), torch.tensor([-1])).flatten()[0].item()
    assert last == pytest.approx(math.log(tilde_first))


def test_vb_term_is_the_gaussian_kl(diffusion):
    torch.manual_seed(0)
    x0 = torch.rand(2, 1, 4, 4, dtype=torch.float64) * 2 - 1  # float64: the expected KL is ~1e-5 bits
    noise = torch.randn_like(x0)
    t = torch.tensor([300, 700])
    x_t = diffusion.q_sample(x0, t, noise)
    ab = diffusion.schedule.alphas_cumprod
    # exact mean (the true noise) and the true variance: KL = 0
    assert diffusion.vb_terms(x0, x_t, t, noise, -torch.ones_like(x0)).abs().max() < 1e-6
    # exact mean, variance beta instead of beta~: KL = (log(b/b~) + b~/b - 1) / 2, in bits
    vb = diffusion.vb_terms(x0, x_t, t, noise, torch.ones_like(x0))
    for row, step in enumerate((300, 700)):
        beta, tilde = _beta_tilde(ab, step, step - 1)
        expected = 0.5 * (math.log(beta / tilde) + tilde / beta - 1) / math.log(2)
        torch.testing.assert_close(vb[row], torch.full_like(vb[row], expected), rtol=1e-5, atol=1e-9)


def test_decoder_nll_matches_scipy(diffusion):
    x0 = torch.tensor([-1.0, 0.0, 1.0, 0.5]).reshape(4, 1, 1, 1)
    t = torch.zeros(4, dtype=torch.long)
    x_t = diffusion.q_sample(x0, t, torch.full_like(x0, 0.3))
    eps = torch.full_like(x0, 0.1)  # a slightly wrong noise estimate: the mean is off x0
    v = torch.full_like(x0, 0.2)
    nll = diffusion.vb_terms(x0, x_t, t, eps, v).flatten()
    x0_hat, _ = diffusion.to_x0_eps(torch.cat([eps, v], 1), x_t, t)
    mean, _ = diffusion.q_posterior(x0_hat, x_t.double(), t)
    std = torch.exp(0.5 * diffusion.model_log_variance(v, t)).flatten()
    for i, x in enumerate([-1.0, 0.0, 1.0, 0.5]):
        m, s = mean.flatten()[i].item(), std[i].item()
        if x == -1.0:
            p = norm.cdf(x + 1 / 255, m, s)
        elif x == 1.0:
            p = 1 - norm.cdf(x - 1 / 255, m, s)
        else:
            p = norm.cdf(x + 1 / 255, m, s) - norm.cdf(x - 1 / 255, m, s)
        assert nll[i].item() == pytest.approx(-math.log(p) / math.log(2), rel=1e-5)


def test_ddpm_with_v_minus_one_is_the_fixed_variance_sampler(diffusion):
    fixed = GaussianDiffusion(NoiseSchedule.named("linear", 1000))

    def eps_model(x, t):
        return 0.3 * x

    def learned(x, t):
        return torch.cat([eps_model(x, t), -torch.ones_like(x)], dim=1)

    x_T = torch.randn(2, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    steps = [999, 700, 400, 100, 0]
    a = diffusion.sample(learned, x_T, steps, sampler="ddpm", generator=torch.Generator().manual_seed(2))
    b = fixed.sample(eps_model, x_T, steps, sampler="ddpm", generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    # ddim ignores the variance channel
    c = diffusion.sample(learned, x_T, steps, sampler="ddim")
    torch.testing.assert_close(c, fixed.sample(eps_model, x_T, steps, sampler="ddim"))


def test_hybrid_loss_trains_the_variance_only_through_vb(diffusion):
    torch.manual_seed(0)
    x0 = torch.rand(3, 1, 4, 4)
    prediction = torch.zeros(3, 1, 4, 4, requires_grad=True)
    v = torch.zeros(3, 1, 4, 4, requires_grad=True)

    def model(x, t):
        return torch.cat([prediction, v], dim=1)

    noise = torch.randn_like(x0)
    t = torch.tensor([0, 10, 500])
    terms = diffusion.training_loss(model, x0, t=t, noise=noise, vb_weight=0.01, return_terms=True)
    assert terms["mse"].item() == pytest.approx(noise.square().mean().item(), rel=1e-6)
    torch.autograd.backward(terms["vb"])
    assert prediction.grad is None or prediction.grad.abs().max() == 0  # stop-gradient on the mean
    assert v.grad.abs().max() > 0
    assert terms["loss"].item() == pytest.approx(terms["mse"].item() + 0.01 * terms["vb"].item(), rel=1e-6)
    with pytest.raises(ValueError, match="expected"):
        diffusion.training_loss(lambda x, t: prediction, x0)
