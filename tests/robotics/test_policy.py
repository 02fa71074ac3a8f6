"""Diffusion Policy and RTI: U-Net shapes, the two readings of an RTI step list, K' selection, Theorem 1's factors,
the runner's queues and network-evaluation counts, and a short overfit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusekit.core import NoiseSchedule
from diffusekit.robotics.control import ControlSettings, PolicyRunner
from diffusekit.robotics.models import ConditionalUnet1D
from diffusekit.robotics.policy import DiffusionPolicy, rti_error_factors, select_start_step, shift_chunk


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_policy(obs_dim: int = 4, action_dim: int = 3, gripper_dims=(2,)) -> DiffusionPolicy:
    torch.manual_seed(0)
    stats = {
        "obs_low": [0.0] * obs_dim, "obs_high": [1.0] * obs_dim, "action_low": [0.0, 0.0, -1.0][:action_dim],
        "action_high": [1.0, 1.0, 1.0][:action_dim], "action_passthrough": [False] * action_dim,
    }  # fmt: skip
    return DiffusionPolicy(obs_dim, action_dim, unet=dict(down_dims=(16, 32), step_embed_dim=16), normalizer=stats,
                           gripper_dims=gripper_dims).eval()  # fmt: skip


def test_unet_keeps_the_chunk_shape_and_checks_the_horizon():
    net = ConditionalUnet1D(2, 10, down_dims=(16, 32, 64), step_embed_dim=16)
    x = torch.randn(3, 16, 2)
    assert net(x, torch.tensor([5, 6, 7]), torch.randn(3, 10)).shape == (3, 16, 2)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(3, 10, 2), torch.tensor([5, 6, 7]), torch.randn(3, 10))


def test_shift_chunk_repeats_the_last_action():
    chunk = torch.arange(5.0).reshape(1, 5, 1)
    assert shift_chunk(chunk).ravel().tolist() == [1, 2, 3, 4, 4]


def test_rti_readings_agree_on_contiguous_lists_and_differ_with_gaps():
    policy = tiny_policy()
    obs, guess = torch.randn(2, 2, 4), torch.randn(2, 16, 3)

    def run(steps, mode):
        return policy.rti_refine(obs, guess, steps, mode, torch.Generator().manual_seed(3))

    torch.testing.assert_close(run((2, 1, 0), "consistent"), run((2, 1, 0), "official"))
    assert not torch.allclose(run((3, 1, 0), "consistent"), run((3, 1, 0), "official"))
    with pytest.raises(ValueError, match="descend"):
        run((1, 2), "consistent")


def test_select_start_step_finds_the_level_of_a_forward_mean():
    policy = tiny_policy()
    clean = torch.randn(2, 16, 3)
    ab = policy.diffusion.schedule.alphas_cumprod
    for k in (0, 3, 40):
        assert select_start_step(policy.diffusion, clean, ab[k].sqrt().float() * clean) == k


def test_theorem_1_factors_never_contract_as_written():
    factors = rti_error_factors(NoiseSchedule.named("cosine", num_steps=100), lipschitz=1.0)
    assert factors.shape == (100,) and bool((factors >= 1).all())
    assert torch.allclose(
        rti_error_factors(NoiseSchedule.named("cosine", num_steps=100), 0.0), torch.ones(100).double()
    )


def test_runner_queues_and_counts_network_evaluations():
    policy = tiny_policy()
    obs = np.full(4, 0.5, dtype=np.float32)
    ddim = PolicyRunner(policy, ControlSettings("ddim", steps=4), torch.Generator().manual_seed(0))
    actions = [ddim.select_action(obs) for _ in range(16)]  # two chunks of n_action = 8
    assert ddim.stats.network_evals == 8 and ddim.stats.control_steps == 16
    assert all(a.shape == (3,) and a[2] in (-1.0, 1.0) for a in actions)  # the gripper is executed as a sign
    rti = PolicyRunner(policy, ControlSettings("rti", rti_steps=(2, 1, 0)), torch.Generator().manual_seed(0))
    for _ in range(5):
        rti.select_action(obs)
    assert rti.stats.first_evals == 100  # the first call is the full DDPM, reported apart
    assert rti.stats.network_evals == 4 * 3 and rti.stats.control_steps == 4
    assert set(torch.unique(rti.guess[..., 2]).tolist()) <= {-1.0, 1.0}  # clip: kept gripper reset to +-1
    rti.reset()
    assert rti.guess is None and not rti.observations


def test_a_short_training_fits_two_demonstrated_chunks():
    policy = tiny_policy(gripper_dims=()).train()
    obs = torch.tensor([[[0.0] * 4] * 2, [[1.0] * 4] * 2]).repeat(16, 1, 1)
    ramp, constant = torch.linspace(-0.8, 0.8, 16)[:, None].repeat(1, 3), torch.full((16, 3), 0.5)
    action = torch.stack([ramp, constant]).repeat(16, 1, 1)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    for _ in range(400):
        loss = policy(obs, action, mode="loss")["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    policy.eval()
    sample = policy.predict_chunk(obs[:2], "ddpm", None, torch.Generator().manual_seed(0))
    assert float((sample - action[:2]).abs().mean()) < 0.2  # each observation gets its own chunk back


def test_rti_step_list_spans_the_chosen_level():
    from diffusekit.robotics.policy import rti_step_list

    assert rti_step_list(18) == (18, 9, 0)
    assert rti_step_list(2) == (2, 1, 0)
    assert rti_step_list(7, 2) == (7, 0)
    assert rti_step_list(0) == (0,)
