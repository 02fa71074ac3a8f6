from __future__ import annotations

import math

import pytest
import torch

from diffusekit.core.layers import Attention, FiLM, TimestepEmbedder, TransformerBlock, timestep_embedding


def test_timestep_embedding_matches_closed_form():
    dim, max_period = 8, 10000.0
    t = torch.tensor([0, 1, 17, 999])
    emb = timestep_embedding(t, dim, max_period)
    assert emb.shape == (4, dim) and emb.dtype == torch.float32
    half = dim // 2
    for row, step in enumerate(t.tolist()):
        for i in range(half):
            angle = step * math.exp(-math.log(max_period) * i / half)
            assert emb[row, i].item() == pytest.approx(math.sin(angle), abs=1e-4)
            assert emb[row, half + i].item() == pytest.approx(math.cos(angle), abs=1e-4)
    # t = 0: sin part 0, cos part 1.
    assert torch.equal(emb[0], torch.cat([torch.zeros(half), torch.ones(half)]))


def test_timestep_embedding_float_t_and_odd_dim():
    t = torch.tensor([0.5, 2.25])
    emb = timestep_embedding(t, 7, max_period=100.0)
    assert emb.shape == (2, 7)
    assert torch.all(emb[:, -1] == 0)  # odd dim: zero column appended
    angle = 2.25 * math.exp(-math.log(100.0) * 1 / 3)
    assert emb[1, 1].item() == pytest.approx(math.sin(angle), abs=1e-6)
    assert emb[1, 4].item() == pytest.approx(math.cos(angle), abs=1e-6)
    # integer and float timesteps agree
    assert torch.allclose(timestep_embedding(torch.tensor([3]), 6), timestep_embedding(torch.tensor([3.0]), 6))
    with pytest.raises(ValueError):
        timestep_embedding(torch.zeros(2, 3), 8)


def test_timestep_embedder_shapes_and_dependence_on_t():
    embedder = TimestepEmbedder(32, sinusoid_dim=16)
    out = embedder(torch.tensor([1, 2, 500]))
    assert out.shape == (3, 32)
    assert not torch.allclose(out[0], out[1])


def test_film_identity_at_init_then_modulates():
    torch.manual_seed(0)
    film = FiLM(cond_dim=5, channels=3)
    cond = torch.randn(2, 5)
    for shape in [(2, 3), (2, 3, 7), (2, 3, 4, 5), (2, 3, 2, 3, 4)]:
        x = torch.randn(shape)
        assert torch.equal(film(x, cond), x)
    torch.nn.init.normal_(film.to_scale_shift.weight)
    torch.nn.init.normal_(film.to_scale_shift.bias)
    x = torch.randn(2, 3, 4, 5)
    out = film(x, cond)
    assert not torch.allclose(out, x)
    # exactly x * (1 + scale) + shift, per sample and channel
    scale, shift = film.to_scale_shift(cond).chunk(2, dim=-1)
    expected = x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
    assert torch.allclose(out, expected, atol=1e-6)
    # channels-last layout for token sequences
    film_last = FiLM(5, 3, channel_dim=-1)
    film_last.load_state_dict(film.state_dict())
    tokens = torch.randn(2, 6, 3)
    expected = tokens * (1 + scale[:, None, :]) + shift[:, None, :]
    assert torch.allclose(film_last(tokens, cond), expected, atol=1e-6)


def test_attention_matches_manual_softmax_and_masks():
    torch.manual_seed(0)
    attn = Attention(dim=8, num_heads=2).eval()
    x = torch.randn(2, 5, 8)
    out = attn(x)
    q = attn.to_q(x).view(2, 5, 2, 4).transpose(1, 2)
    k, v = attn.to_kv(x).view(2, 5, 2, 2, 4).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)
    manual = attn.to_out((weights @ v).transpose(1, 2).reshape(2, 5, 8))
    assert torch.allclose(out, manual, atol=1e-5)

    # Padded keys are ignored: changing them does not change the output.
    padding = torch.tensor([[False] * 5, [False, False, False, True, True]])
    changed = x.clone()
    changed[1, 3:] = torch.randn(2, 8)
    a, b = attn(x, key_padding_mask=padding), attn(changed, key_padding_mask=padding)
    assert torch.allclose(a[1, :3], b[1, :3], atol=1e-6)
    # A causal bool mask (True = may attend): the first query only sees the first key.
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    changed = x.clone()
    changed[:, 1:] = torch.randn(2, 4, 8)
    assert torch.allclose(attn(x, attn_mask=causal)[:, 0], attn(changed, attn_mask=causal)[:, 0], atol=1e-6)
    # Both masks combined (float additive mask + padding).
    additive = torch.zeros(5, 5).masked_fill(~causal, float("-inf"))
    combined = attn(x, attn_mask=additive, key_padding_mask=padding)
    assert torch.allclose(combined, attn(x, attn_mask=causal, key_padding_mask=padding), atol=1e-6)
    assert torch.isfinite(combined).all()


def test_transformer_block_cross_attention_and_conditioning():
    torch.manual_seed(0)
    block = TransformerBlock(dim=16, num_heads=4, mlp_ratio=2.0, context_dim=12, cond_dim=6).eval()
    x, context, cond = torch.randn(3, 7, 16), torch.randn(3, 4, 12), torch.randn(3, 6)
    out = block(x, context=context, cond=cond)
    assert out.shape == x.shape
    assert not torch.allclose(out, block(x, context=torch.randn(3, 4, 12), cond=cond))
    # FiLM is the identity at init: cond has no effect until its weights move.
    assert torch.allclose(out, block(x, context=context, cond=torch.randn(3, 6)))
    for film in block.films.values():
        torch.nn.init.normal_(film.to_scale_shift.weight, std=0.1)
    assert not torch.allclose(block(x, context=context, cond=cond), block(x, context=context, cond=cond + 1))
    # Context padding: padded context tokens do not matter.
    pad = torch.tensor([[False, False, True, True]] * 3)
    other = context.clone()
    other[:, 2:] = torch.randn(3, 2, 12)
    assert torch.allclose(
        block(x, context=context, cond=cond, context_padding_mask=pad),
        block(x, context=other, cond=cond, context_padding_mask=pad),
        atol=1e-6,
    )
    with pytest.raises(ValueError):
        block(x, cond=cond)  # context required


def test_transformer_block_gradients_and_dropout_modes():
    torch.manual_seed(0)
    block = TransformerBlock(dim=8, num_heads=2, dropout=0.5)
    x = torch.randn(2, 5, 8, requires_grad=True)
    block(x).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())
    block.eval()
    assert torch.equal(block(x), block(x))
