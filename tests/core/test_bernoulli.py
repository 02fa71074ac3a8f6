"""BernoulliDiffusion against its maths: marginals, Bayes' rule, the KL, and samplers with oracle models."""

from __future__ import annotations

import math

import pytest
import torch

from diffusekit.core.bernoulli import BernoulliDiffusion
from diffusekit.core.schedule import NoiseSchedule

LINEAR = NoiseSchedule.named("linear", 1000)
COSINE = NoiseSchedule.named("cosine", 1000)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _step_matrix(schedule: NoiseSchedule, t: int) -> torch.Tensor:
    """2x2 one-step kernel M[a, b] = q(y_t = b | y_{t-1} = a) = B((1 - beta_t) y_{t-1} + beta_t / 2)."""
    beta = float(schedule.betas[t])
    keep, flip = 1 - beta / 2, beta / 2
    return torch.tensor([[keep, flip], [flip, keep]], dtype=torch.float64)


def _kernel(schedule: NoiseSchedule, start: int, stop: int) -> torch.Tensor:
    """q(y_stop | y_start) by composing one-step kernels for steps start+1..stop (start = -1: the clean data)."""
    m = torch.eye(2, dtype=torch.float64)
    for s in range(start + 1, stop + 1):
        m = m @ _step_matrix(schedule, s)
    return m


@pytest.mark.parametrize("schedule", [LINEAR, COSINE], ids=["linear", "cosine"])
@pytest.mark.parametrize("value", [0.0, 1.0])
def test_y_T_is_bernoulli_half_for_any_y0(schedule, value):
    # the released BerDiff / Echo-DND forward bug (no (1 - alpha-bar)/2 term) gives mean(y_T) = 0 for y0 = 0
    diff = BernoulliDiffusion(schedule)
    y0 = torch.full((8, 1, 128, 128), value)
    y_T = diff.q_sample(y0, schedule.num_steps - 1, generator=_gen(1))
    n = y_T.numel()
    assert set(y_T.unique().tolist()) <= {0.0, 1.0}
    assert abs(y_T.mean().item() - 0.5) < 4 * math.sqrt(0.25 / n)


@pytest.mark.parametrize("t", [0, 50, 250, 600])
def test_q_sample_mean_equals_q_probs(t):
    diff = BernoulliDiffusion(LINEAR)
    y0 = (torch.rand(16, 64, 64, generator=_gen(2)) < 0.4).float()
    y_t = diff.q_sample(y0, t, generator=_gen(3))
    for value in (0.0, 1.0):
        sel = y0 == value
        expected = diff.q_probs(torch.tensor([value]), t).item()
        se = math.sqrt(expected * (1 - expected) / sel.sum().item())
        assert abs(y_t[sel].mean().item() - expected) < 4 * se + 1e-9


@pytest.mark.parametrize("schedule", [LINEAR, COSINE], ids=["linear", "cosine"])
def test_composed_one_step_kernels_give_the_closed_form_marginal(schedule):
    diff = BernoulliDiffusion(schedule)
    y0 = torch.tensor([0.0, 1.0, 0.3], dtype=torch.float64)
    probs, composed = y0.clone(), []
    for beta in schedule.betas:
        probs = (1 - beta) * probs + beta / 2  # P(y_t = 1) after one more step
        composed.append(probs)
    T = schedule.num_steps
    closed = diff.q_probs(y0.expand(T, 3), torch.arange(T))
    torch.testing.assert_close(closed, torch.stack(composed), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "t,t_prev", [(1, 0), (10, 9), (500, 499), (999, 998), (999, 500), (300, 100), (50, 0), (20, 3)]
)
def test_posterior_is_bayes_rule(t, t_prev):
    diff = BernoulliDiffusion(LINEAR)
    y0_values = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.0], dtype=torch.float64)
    to_t = _kernel(LINEAR, t_prev, t)  # q(y_t | y_tprev), composed step by step
    for y_t in (0.0, 1.0):
        for y0 in y0_values:
            start = torch.stack([1 - y0, y0])  # y0 as a distribution (soft y0 = a mixture)
            m_prev = start @ _kernel(LINEAR, -1, t_prev)  # q(y_tprev | y0)
            m_t = start @ _kernel(LINEAR, -1, t)  # q(y_t | y0)
            joint = to_t[:, int(y_t)] * m_prev  # q(y_t | y_tprev) q(y_tprev | y0), for y_tprev = 0, 1
            assert joint.sum().item() == pytest.approx(m_t[int(y_t)].item(), rel=1e-10)
            expected = (joint[1] / m_t[int(y_t)]).item()
            args = (torch.tensor([[y_t]], dtype=torch.float64), y0.reshape(1, 1))
            got = diff.posterior(*args, torch.tensor([t]), torch.tensor([t_prev])).item()
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
            logit = diff.posterior_logit(args[0], torch.logit(args[1]), torch.tensor([t]), torch.tensor([t_prev]))
            assert torch.sigmoid(logit).item() == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # default t_prev = t - 1, and the clean level returns y0_prob itself
    y_t, y0 = torch.tensor([[1.0, 0.0, 1.0]]), torch.tensor([[0.3, 0.6, 1.0]])
    torch.testing.assert_close(diff.posterior(y_t, y0, 7), diff.posterior(y_t, y0, 7, 6))
    torch.testing.assert_close(diff.posterior(y_t, y0, 7, -1), y0)


def _recording_model(logits: torch.Tensor, seen: list):
    def model(y_t, t):
        seen.append(y_t.clone())
        return logits

    return model


@pytest.mark.parametrize("prediction", ["x0", "flip"])
def test_kl_is_zero_for_the_true_y0_and_positive_otherwise(prediction):
    diff = BernoulliDiffusion(LINEAR, prediction=prediction)
    y0 = (torch.rand(4, 1, 16, 16, generator=_gen(4)) < 0.5).float()
    t = torch.tensor([0, 3, 400, 999])

    def oracle(y_t, tt):
        target = y0 if prediction == "x0" else (y_t - y0).abs()
        return 60.0 * (2 * target - 1)

    terms = diff.training_loss(oracle, y0, t=t, generator=_gen(5), return_terms=True)
    assert terms["kl"].item() < 1e-6 and terms["bce"].item() < 1e-6
    for t_single in (0, 3, 400):
        unsure = diff.training_loss(
            lambda y, tt: torch.zeros_like(y), y0, t=torch.full((4,), t_single), return_terms=True
        )
        assert unsure["kl"].item() > 1e-6
    # at t = 0 the term is the decoder NLL: -log2(1/2) = 1 bit for p = 1/2
    nll = diff.training_loss(lambda y, tt: torch.zeros_like(y), y0, t=torch.zeros(4, dtype=torch.long))
    assert nll.item() == pytest.approx(2.0, abs=1e-6)  # 1 bit of KL (NLL) + 1 bit of BCE


def test_kl_matches_bernoulli_kl_of_the_posteriors_with_mask():
    diff = BernoulliDiffusion(LINEAR)
    y0 = (torch.rand(3, 1, 8, 8, generator=_gen(6)) < 0.5).float()
    logits = 2 * torch.randn(3, 1, 8, 8, generator=_gen(7))
    mask = (torch.rand(3, 1, 8, 8, generator=_gen(8)) < 0.5).float()
    t = torch.tensor([1, 30, 200])
    seen: list = []
    terms = diff.training_loss(_recording_model(logits, seen), y0, t=t, mask=mask, return_terms=True)
    y_t = seen[0].double()
    q = diff.posterior(y_t, y0.double(), t)
    p = diff.posterior(y_t, torch.sigmoid(logits.double()), t)
    kl = q * torch.log(q / p) + (1 - q) * torch.log((1 - q) / (1 - p))
    expected = (kl * mask).sum() / mask.sum() / math.log(2)
    assert terms["kl"].item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-7)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y0, reduction="none")
    assert terms["bce"].item() == pytest.approx(((bce * mask).sum() / mask.sum() / math.log(2)).item(), rel=1e-5)
    zero = diff.training_loss(_recording_model(logits, []), y0, t=t, mask=torch.zeros_like(mask))
    assert zero.item() == 0.0


def test_training_a_tiny_conditional_model_reduces_the_loss():
    torch.manual_seed(0)
    schedule = NoiseSchedule.named("linear", 100, beta_end=0.2)
    diff = BernoulliDiffusion(schedule)
    weights = torch.zeros(3, requires_grad=True)  # per-pixel logit = w0 image + w1 (2 y_t - 1) + w2

    def model(y_t, t, image):
        return weights[0] * image + weights[1] * (2 * y_t - 1) + weights[2]

    image = torch.randn(16, 1, 8, 8, generator=_gen(9))
    y0 = (image > 0.3).float()

    def evaluate() -> float:
        with torch.no_grad():
            return diff.training_loss(model, y0, generator=_gen(10), image=image).item()

    before = evaluate()
    opt = torch.optim.Adam([weights], lr=0.1)
    for step in range(150):
        opt.zero_grad()
        diff.training_loss(model, y0, generator=_gen(100 + step), image=image).backward()
        opt.step()
    after = evaluate()
    assert after < 0.5 * before, (before, after)


def _oracle(y0: torch.Tensor, prediction: str):
    def model(y_t, t):
        target = y0 if prediction == "x0" else (y_t - y0).abs()
        return torch.where(target > 0.5, torch.inf, -torch.inf)

    return model


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
@pytest.mark.parametrize("prediction", ["x0", "flip"])
@pytest.mark.parametrize("timesteps", [None, 10, [999, 700, 20, 3]], ids=["all", "ten", "list"])
def test_oracle_model_returns_y0_exactly(sampler, prediction, timesteps):
    diff = BernoulliDiffusion(LINEAR, prediction=prediction)
    y0 = (torch.rand(2, 1, 16, 16, generator=_gen(11)) < 0.3).float()
    prob, mask = diff.sample(_oracle(y0, prediction), shape=y0.shape, timesteps=timesteps, sampler=sampler)
    assert torch.equal(prob, y0) and torch.equal(mask, y0)


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
@pytest.mark.parametrize("p", [0.5, 0.3])
def test_constant_model_keeps_the_forward_marginals(sampler, p):
    # a model that always predicts y0_prob = p must produce states with P(y_s = 1) = q_probs(p, s) at every level
    diff = BernoulliDiffusion(LINEAR)
    logit = math.log(p / (1 - p))
    traj = diff.sample(
        lambda y, t: torch.full_like(y, logit),
        shape=(8, 1, 64, 64),
        timesteps=20,
        sampler=sampler,
        generator=_gen(12),
        return_trajectory=True,
    )
    n = traj.states[:, 0].numel()
    levels = traj.timesteps[1:]
    for i, level in enumerate(levels):
        expected = diff.q_probs(torch.tensor([p]), level).item()
        assert abs(traj.states[:, i].mean().item() - expected) < 4 * math.sqrt(0.25 / n), (i, level)
    assert torch.allclose(traj.sample, torch.full_like(traj.sample, p))
    assert torch.equal(traj.mask, (traj.sample >= 0.5).float())
    assert torch.allclose(traj.x0_preds, torch.full_like(traj.x0_preds, p))


def test_same_seed_same_sample():
    diff = BernoulliDiffusion(LINEAR)
    model = lambda y, t: 3 * (2 * y - 1) - 0.5  # noqa: E731
    a = diff.sample(model, shape=(2, 1, 16, 16), timesteps=25, generator=_gen(13), return_trajectory=True)
    b = diff.sample(model, shape=(2, 1, 16, 16), timesteps=25, generator=_gen(13), return_trajectory=True)
    c = diff.sample(model, shape=(2, 1, 16, 16), timesteps=25, generator=_gen(14), return_trajectory=True)
    assert torch.equal(a.states, b.states) and not torch.equal(a.states, c.states)
    y_T = torch.ones(2, 1, 16, 16)
    d1, _ = diff.sample(model, y_T, timesteps=25, sampler="ddim", generator=_gen(15))
    d2, _ = diff.sample(model, y_T, timesteps=25, sampler="ddim", generator=_gen(15))
    assert torch.equal(d1, d2)


def test_bad_arguments_raise():
    diff = BernoulliDiffusion(LINEAR)
    with pytest.raises(ValueError):
        BernoulliDiffusion(LINEAR, prediction="eps")
    with pytest.raises(ValueError):
        diff.sample(lambda y, t: y, timesteps=5)
    with pytest.raises(ValueError):
        diff.sample(lambda y, t: y, shape=(1, 4), sampler="ddpm")
    with pytest.raises(ValueError):
        diff.sample(lambda y, t: y, shape=(1, 4), timesteps=[3, 5])
