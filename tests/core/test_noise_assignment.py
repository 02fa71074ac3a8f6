"""Immiscible-diffusion noise assignment: a permutation that lowers the pairing distance, used as the loss target."""

import itertools

import pytest
import torch

from diffusekit.core import GaussianDiffusion, NoiseSchedule, assign_noise
from diffusekit.core.noise_assignment import hungarian_assignment, knn_selection


def _pair_dist(x0, noise):
    return (x0 - noise).flatten(1).norm(dim=1).mean().item()


def test_hungarian_returns_a_permutation_of_the_drawn_noise_and_lowers_the_distance():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(64, 3, 8, 8, generator=g) * 2 + 1
    noise = torch.randn(64, 3, 8, 8, generator=g)
    perm = hungarian_assignment(x0, noise)
    assert sorted(perm.tolist()) == list(range(64))
    assigned = assign_noise(x0, noise, "hungarian")
    torch.testing.assert_close(assigned, noise[perm])
    assert _pair_dist(x0, assigned) < _pair_dist(x0, noise)


def test_hungarian_is_optimal_on_a_small_batch():
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    cost = torch.cdist(x0, noise)
    best = min(sum(cost[i, p[i]].item() for i in range(6)) for p in itertools.permutations(range(6)))
    perm = hungarian_assignment(x0, noise, scale=1.0)
    assert sum(cost[i, perm[i]].item() for i in range(6)) == pytest.approx(best, rel=1e-3)  # fp16-quantised cost


def test_hungarian_is_a_no_op_at_batch_one():
    x0, noise = torch.randn(1, 5), torch.randn(1, 5)
    torch.testing.assert_close(assign_noise(x0, noise, "hungarian"), noise)


def test_knn_keeps_the_nearest_candidate():
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(32, 16, generator=g)
    chosen, idx = knn_selection(x0, k=8, generator=torch.Generator().manual_seed(3))
    cands = torch.randn(32, 8, 16, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(chosen, cands[torch.arange(32), idx])
    d = (cands - x0[:, None]).norm(dim=-1)
    assert torch.equal(idx, d.argmin(1)) or (d.gather(1, idx[:, None]).squeeze(1) - d.min(1).values).abs().max() < 1e-2
    assert _pair_dist(x0, chosen) < _pair_dist(x0, cands[:, 0])


def test_training_loss_regresses_the_assigned_noise():
    """The loss target must be the assigned noise (the lucidrains bug regressed the unpermuted one)."""
    d = GaussianDiffusion(NoiseSchedule.named("linear", 1000))
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(16, 8, generator=g) * 3
    noise = torch.randn(16, 8, generator=g)
    assigned = assign_noise(x0, noise, "hungarian")
    assert not torch.equal(assigned, noise)
    t = torch.full((16,), 500)
    seen = {}

    def model(x_t, tt):
        seen["x_t"] = x_t
        ab = d.schedule.alphas_cumprod[500].float()
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()  # exact eps of whatever noise was used

    loss = d.training_loss(model, x0, t=t, noise=noise, noise_assignment="hungarian")
    assert loss.item() == pytest.approx(0.0, abs=1e-8)
    torch.testing.assert_close(seen["x_t"], d.q_sample(x0, t, assigned))


def test_unknown_method():
    with pytest.raises(ValueError):
        assign_noise(torch.zeros(2, 2), None, "sinkhorn")
