from __future__ import annotations

import pytest
import torch
from torch import nn

from diffusekit.core.ema import copy_ema_to, ema_decay_at, make_ema


class Scalar(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.register_buffer("stat", torch.zeros(()))


def test_ema_equals_closed_form_geometric_average():
    decay = 0.9
    model = Scalar()
    values = [3.0, -1.0, 4.0, 1.5, -5.0, 9.0]
    with torch.no_grad():
        model.w.fill_(values[0])
        model.stat.fill_(10 * values[0])
    ema = make_ema(model, decay=decay)
    assert ema.module.w.item() == pytest.approx(values[0])  # the copy starts at the current weights
    for k, value in enumerate(values, start=1):
        with torch.no_grad():
            model.w.fill_(value)
            model.stat.fill_(10 * value)
        ema.update_parameters(model)
        # Closed form after k updates: the first copies, then p = d*p + (1-d)*v_j:
        # p_k = d^(k-1) v_1 + sum_{j=2..k} (1-d) d^(k-j) v_j
        expected = decay ** (k - 1) * values[0] + sum(
            (1 - decay) * decay ** (k - j) * values[j - 1] for j in range(2, k + 1)
        )
        assert ema.module.w.item() == pytest.approx(expected, rel=1e-6)
        assert ema.module.stat.item() == pytest.approx(10 * expected, rel=1e-6)  # buffers averaged too
    assert int(ema.n_averaged) == len(values)


def test_ema_warmup_schedule():
    assert ema_decay_at(0) == 0.0
    assert ema_decay_at(1, power=0.75) == pytest.approx(1 - 2**-0.75)
    assert ema_decay_at(10**9, max_decay=0.999) == 0.999
    model = Scalar()
    ema = make_ema(model, decay=0.999, warmup_power=0.75)
    expected = None
    for k, value in enumerate([2.0, 4.0, -3.0, 7.0]):
        with torch.no_grad():
            model.w.fill_(value)
        ema.update_parameters(model)
        if k == 0:
            expected = value
        else:
            d = min(1 - (1 + k) ** -0.75, 0.999)
            expected = d * expected + (1 - d) * value
        assert ema.module.w.item() == pytest.approx(expected, rel=1e-6)


def test_ema_in_a_training_loop_and_copy_back():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.GroupNorm(2, 8), nn.Linear(8, 1))
    ema = make_ema(model, decay=0.5)
    assert not ema.module.training
    assert not any(p.requires_grad for p in ema.module.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    for _ in range(5):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        ema.update_parameters(model)
    # EMA lags behind the trained weights, and its forward is the averaged module's.
    assert not torch.allclose(ema.module[0].weight, model[0].weight)
    assert torch.equal(ema(x), ema.module(x))
    target = copy_ema_to(ema, nn.Sequential(nn.Linear(4, 8), nn.GroupNorm(2, 8), nn.Linear(8, 1)))
    assert torch.equal(target(x), ema.module(x))
    # The state_dict round-trips (n_averaged included).
    restored = make_ema(model, decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert int(restored.n_averaged) == 5 and torch.equal(restored(x), ema(x))


def test_make_ema_rejects_bad_decay():
    with pytest.raises(ValueError):
        make_ema(Scalar(), decay=1.5)
