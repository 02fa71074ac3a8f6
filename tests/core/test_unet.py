from __future__ import annotations

import pytest
import torch
from torch import nn

from diffusekit.core.unet import UNet1D, UNet2D


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny nets run fastest on one thread; with two threads on a busy 2-core machine OpenMP spin-waits make
    these tests 5-10x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def perturb_zero_init(model: nn.Module, std: float = 0.1) -> nn.Module:
    """Give the zero-initialised layers (output conv, FiLM) random weights, as training soon would."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if torch.all(p == 0):
                p.add_(std * torch.randn(p.shape, generator=generator))
    return model


def tiny_1d(**kwargs) -> UNet1D:
    defaults = dict(channels=(16, 32), num_res_blocks=1, norm_groups=4)
    return UNet1D(3, **(defaults | kwargs))


def tiny_2d(**kwargs) -> UNet2D:
    defaults = dict(channels=(16, 32), num_res_blocks=1, norm_groups=4)
    return UNet2D(2, **(defaults | kwargs))


@pytest.mark.parametrize("length", [1, 5, 37, 64])
def test_unet1d_any_length_returns_input_shape(length):
    torch.manual_seed(0)
    model = perturb_zero_init(UNet1D(3, channels=(16, 32, 32), num_res_blocks=2, attention_levels=(-1,)))
    x = torch.randn(2, 3, length)
    out = model(x, torch.tensor([3, 700]))
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("size", [(21, 21), (1, 9), (13, 30), (16, 16)])
def test_unet2d_any_size_returns_input_shape(size):
    torch.manual_seed(0)
    model = perturb_zero_init(tiny_2d(channels=(8, 16, 16), attention_levels=(1, 2)))
    x = torch.randn(2, 2, *size)
    out = model(x, torch.tensor([0.5, 10.0]))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_out_channels_and_zero_output_at_init():
    x = torch.randn(2, 3, 37)
    model = tiny_1d(out_channels=5)
    out = model(x, torch.tensor([1, 2]))
    assert out.shape == (2, 5, 37)
    assert torch.count_nonzero(out) == 0  # zero-initialised output layer
    out2d = tiny_2d(out_channels=1)(torch.randn(2, 2, 21, 21), torch.tensor([1, 2]))
    assert out2d.shape == (2, 1, 21, 21) and torch.count_nonzero(out2d) == 0


@pytest.mark.parametrize("make, spatial", [(tiny_1d, (37,)), (tiny_2d, (21, 21))])
def test_output_depends_on_x_t_cond_and_global_cond(make, spatial):
    torch.manual_seed(0)
    model = perturb_zero_init(make(cond_channels=2, global_cond_dim=6)).eval()
    x = torch.randn(2, model.in_channels, *spatial)
    t = torch.tensor([10, 500])
    cond = torch.randn(2, 2, *spatial)
    global_cond = torch.randn(2, 6)
    out = model(x, t, cond=cond, global_cond=global_cond)
    assert out.shape == x.shape

    def differs(**changes) -> bool:
        args = dict(x=x, t=t, cond=cond, global_cond=global_cond) | changes
        return not torch.allclose(model(**args), out, atol=1e-6)

    assert differs(x=torch.randn_like(x))
    assert differs(t=torch.tensor([11, 500]))
    assert differs(cond=torch.randn_like(cond))
    assert differs(global_cond=torch.randn_like(global_cond))
    # Per-sample conditioning: changing sample 1's global_cond leaves sample 0 alone.
    other = global_cond.clone()
    other[1] += 1
    assert torch.allclose(model(x, t, cond=cond, global_cond=other)[0], out[0], atol=1e-6)
    # A scalar t is broadcast; float and integer timesteps agree.
    same_t = torch.tensor([7, 7])
    ref = model(x, same_t, cond=cond, global_cond=global_cond)
    assert torch.allclose(model(x, 7, cond=cond, global_cond=global_cond), ref)
    assert torch.allclose(model(x, same_t.float(), cond=cond, global_cond=global_cond), ref)


def test_shape_errors_are_explicit():
    model = tiny_1d(cond_channels=2, global_cond_dim=4)
    x, t = torch.randn(2, 3, 10), torch.tensor([1, 2])
    with pytest.raises(ValueError, match="cond must have shape"):
        model(x, t, cond=torch.randn(2, 2, 11), global_cond=torch.randn(2, 4))
    with pytest.raises(ValueError, match="global_cond must have shape"):
        model(x, t, cond=torch.randn(2, 2, 10))
    with pytest.raises(ValueError, match="x must be"):
        model(torch.randn(2, 4, 10), t, cond=torch.randn(2, 2, 10), global_cond=torch.randn(2, 4))
    with pytest.raises(ValueError, match="global_cond given"):
        tiny_1d()(x, t, global_cond=torch.randn(2, 4))


@pytest.mark.parametrize("make, spatial", [(tiny_1d, (37,)), (tiny_2d, (9, 11))])
def test_gradients_reach_every_parameter(make, spatial):
    torch.manual_seed(0)
    model = perturb_zero_init(make(cond_channels=1, global_cond_dim=3, attention_levels=(-1,), dropout=0.1))
    x = torch.randn(2, model.in_channels, *spatial)
    out = model(x, torch.tensor([4, 90]), cond=torch.randn(2, 1, *spatial), global_cond=torch.randn(2, 3))
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


def overfit(model: nn.Module, x: torch.Tensor, target: torch.Tensor, steps: int, **kwargs) -> tuple[float, float]:
    """Regress a fixed target from a fixed batch; returns (first loss, last loss)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    t = torch.arange(x.shape[0]) * 37
    losses = []
    for _ in range(steps):
        loss = nn.functional.mse_loss(model(x, t, **kwargs), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses[0], min(losses[-10:])


def test_unet1d_overfits_one_batch_and_trains_every_parameter():
    torch.manual_seed(0)
    model = tiny_1d(global_cond_dim=4, attention_levels=(-1,))
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    x, target = torch.randn(4, 3, 24), torch.randn(4, 3, 24)
    first, last = overfit(model, x, target, steps=150, global_cond=torch.randn(4, 4))
    assert last < first / 100, (first, last)
    unchanged = [n for n, p in model.named_parameters() if torch.equal(p, initial[n])]
    assert not unchanged  # zero-initialised FiLM and output layers start learning


def test_unet2d_overfits_one_batch():
    torch.manual_seed(0)
    model = tiny_2d(cond_channels=1)
    x, target = torch.randn(2, 2, 12, 12), torch.randn(2, 2, 12, 12)
    first, last = overfit(model, x, target, steps=100, cond=torch.randn(2, 1, 12, 12))
    assert last < first / 100, (first, last)


def test_features_are_added_after_the_input_conv():
    model = perturb_zero_init(tiny_2d())
    x, t = torch.randn(2, 2, 8, 12), torch.tensor([3, 4])
    torch.testing.assert_close(model(x, t, features=torch.zeros(2, 16, 8, 12)), model(x, t))
    # a constant feature map c adds exactly what raising the input conv's bias by c adds (no padding at 8 x 12)
    c = torch.randn(16)
    out = model(x, t, features=c.reshape(1, 16, 1, 1).expand(2, 16, 8, 12))
    with torch.no_grad():
        model.input_conv.bias += c
    torch.testing.assert_close(out, model(x, t))
    with pytest.raises(ValueError, match="features must have shape"):
        model(x, t, features=torch.randn(2, 8, 8, 12))
