"""Tests of the ImDiffusion denoiser (`diffusekit.timeseries.models`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from diffusekit.core import GaussianDiffusion, NoiseSchedule
from diffusekit.timeseries.models import AxialEncoderLayer, ImDiffusionNet, csdi_step_embedding

B, K, L = 3, 5, 12


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train faster on one thread, and it avoids OpenMP stalls on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny(**kwargs) -> ImDiffusionNet:
    defaults = dict(channels=16, layers=2, heads=4, ffn_dim=16, step_embed_dim=32, time_embed_dim=32)
    defaults.update(kwargs)
    return ImDiffusionNet(K, **defaults)


def _perturb_output(model: ImDiffusionNet) -> None:
    with torch.no_grad():
        nn.init.normal_(model.output_projection2.weight, std=0.5)


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, K, L, generator=g), torch.tensor([0, 7, 49]), torch.tensor([0, 1, 1])


def test_shape_dtype_and_zero_init():
    torch.manual_seed(0)
    model = _tiny()
    x, t, mt = _inputs()
    out = model(x, t, mt)
    assert out.shape == (B, K, L) and out.dtype == torch.float32
    assert torch.equal(out, torch.zeros_like(out))  # zero-initialised last 1x1 conv
    assert model.double()(x.double(), t, mt).dtype == torch.float64


def test_step_embedding_matches_csdi_table():
    t = torch.tensor([0, 3, 49])
    emb = csdi_step_embedding(t, 128)
    freqs = 10.0 ** (torch.arange(64) / 63 * 4.0)
    expected = torch.cat([torch.sin(t[:, None] * freqs), torch.cos(t[:, None] * freqs)], dim=1)
    torch.testing.assert_close(emb, expected)


def test_output_depends_on_t_mask_type_and_mixes_both_axes():
    torch.manual_seed(0)
    model = _tiny().eval()
    _perturb_output(model)
    x, t, mt = _inputs()
    with torch.no_grad():
        base = model(x, t, mt)
        assert (model(x, t + 1, mt) - base).abs().max() > 1e-4
        assert (model(x, t, 1 - mt) - base).abs().max() > 1e-4
        for j in range(K):
            s = L // 2
            xp = x.clone()
            xp[:, j, s] += 1.0
            diff = (model(xp, t, mt) - base).abs()
            other_features = torch.cat([diff[:, :j], diff[:, j + 1 :]], dim=1)
            other_times = torch.cat([diff[:, :, :s], diff[:, :, s + 1 :]], dim=2)
            assert other_features.max() > 1e-5, f"feature {j} does not reach other features"
            assert other_times.max() > 1e-5, f"feature {j} does not reach other times"
            # a different feature at a different time: needs both the temporal and the feature transformer
            assert diff[:, (j + 1) % K, (s + 3) % L].max() > 1e-6


def test_mask_type_required():
    model = _tiny()
    x, t, _ = _inputs()
    with pytest.raises(ValueError, match="mask_type"):
        model(x, t)
    assert _tiny(num_mask_types=0)(x, t).shape == (B, K, L)


def test_conditional_mode():
    torch.manual_seed(0)
    model = _tiny(conditional=True).eval()
    _perturb_output(model)
    x, t, mt = _inputs()
    observed = torch.randn(B, K, L)
    cond = (torch.rand(B, K, L) > 0.5).float()
    with pytest.raises(ValueError, match="cond_mask"):
        model(x, t, mt)
    with torch.no_grad():
        out = model(x, t, mt, cond_mask=cond, observed=observed)
        assert out.shape == (B, K, L)
        # observed values are read only where cond_mask = 1; noisy values only where it is 0
        observed2 = observed + 5.0 * (1 - cond)
        torch.testing.assert_close(model(x, t, mt, cond_mask=cond, observed=observed2), out)
        assert (model(x, t, mt, cond_mask=1 - cond, observed=observed) - out).abs().max() > 1e-4


@pytest.mark.parametrize("axis", ["time", "feature"])
def test_axial_layer_equals_torch_transformer_encoder_layer(axis):
    torch.manual_seed(0)
    c, heads, ffn = 16, 4, 24
    ours = AxialEncoderLayer(c, heads, ffn, axis).eval()
    ref = nn.TransformerEncoderLayer(c, heads, dim_feedforward=ffn, dropout=0.0, activation="gelu").eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.3)  # non-trivial norms and biases too
        ours.qkv.weight.copy_(ref.self_attn.in_proj_weight)
        ours.qkv.bias.copy_(ref.self_attn.in_proj_bias)
        ours.out.load_state_dict(ref.self_attn.out_proj.state_dict())
        ours.ff1.load_state_dict(ref.linear1.state_dict())
        ours.ff2.load_state_dict(ref.linear2.state_dict())
        ours.norm1.load_state_dict(ref.norm1.state_dict())
        ours.norm2.load_state_dict(ref.norm2.state_dict())
    y = torch.randn(B, c, K, L)  # CSDI layout (B, C, K, L)
    with torch.no_grad():
        if axis == "time":  # CSDI forward_time: (L, B*K, C) sequences
            seq = y.permute(3, 0, 2, 1).reshape(L, B * K, c)
            expected = ref(seq).reshape(L, B, K, c).permute(1, 0, 2, 3)  # -> (B, L, K, C)
        else:  # CSDI forward_feature: (K, B*L, C) sequences
            seq = y.permute(2, 0, 3, 1).reshape(K, B * L, c)
            expected = ref(seq).reshape(K, B, L, c).permute(1, 2, 0, 3)
        got = ours(y.permute(0, 3, 2, 1).contiguous())  # our layout (B, L, K, C)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = _tiny(conditional=True)
    _perturb_output(model)
    x, t, mt = _inputs()
    cond = (torch.rand(B, K, L) > 0.5).float()
    model(x, t, mt, cond_mask=cond, observed=torch.randn(B, K, L)).square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_overfits_one_batch():
    torch.manual_seed(0)
    model = ImDiffusionNet(
        K, channels=16, layers=2, heads=2, ffn_dim=16, step_embed_dim=32, time_embed_dim=16, feature_embed_dim=8
    )
    diffusion = GaussianDiffusion(NoiseSchedule.named("quad", 50))
    g = torch.Generator().manual_seed(1)
    x0 = torch.sin(torch.linspace(0, 6.0, L))[None, None] * torch.randn(4, K, 1, generator=g)
    t = torch.tensor([5, 20, 35, 49])
    noise = torch.randn(x0.shape, generator=g)
    mt = torch.tensor([0, 1, 0, 1])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = diffusion.training_loss(model, x0, t=t, noise=noise, mask_type=mt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5, (losses[0], losses[-1])
