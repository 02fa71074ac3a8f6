"""Shared neural building blocks: timestep embeddings, FiLM, attention and transformer blocks.

Everything here is domain-free; the U-Nets (`diffusekit.core.unet`) and the domain networks build on it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

__all__ = ["timestep_embedding", "TimestepEmbedder", "FiLM", "Attention", "TransformerBlock"]


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps.

    The positional encoding of Vaswani et al. 2017 (§3.5), used for diffusion steps by Ho et al. 2020 (DDPM):
    with ``half = dim // 2`` and frequencies ``w_i = exp(-log(max_period) * i / half)``, ``i = 0 .. half-1``,

        ``emb(t) = [sin(t w_0), ..., sin(t w_{half-1}), cos(t w_0), ..., cos(t w_{half-1})]``

    and one zero column appended when ``dim`` is odd.

    Args:
        t: integer or float timesteps, shape ``(B,)`` (a 0-d tensor is treated as ``(1,)``).
        dim: embedding size.
        max_period: the longest wavelength, ``2*pi*max_period``.

    Returns:
        float32 tensor ``(B, dim)`` on ``t``'s device.
    """
    if t.ndim == 0:
        t = t[None]
    if t.ndim != 1:
        raise ValueError(f"timesteps must have shape (B,), got {tuple(t.shape)}")
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=t.device) / half
    frequencies = torch.exp(-math.log(max_period) * exponent)
    angles = t.float()[:, None] * frequencies[None, :]
    embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2:
        embedding = F.pad(embedding, (0, 1))
    return embedding


class TimestepEmbedder(nn.Module):
    """Timestep -> sinusoid -> Linear -> SiLU -> Linear (the DDPM / ADM time-embedding MLP).

    Args:
        out_dim: size of the returned embedding (also the hidden width of the MLP).
        sinusoid_dim: size of the sinusoidal features; defaults to ``out_dim``.
        max_period: see `timestep_embedding`.
    """

    def __init__(self, out_dim: int, sinusoid_dim: int | None = None, max_period: float = 10000.0):
        super().__init__()
        self.sinusoid_dim = sinusoid_dim or out_dim
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(self.sinusoid_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: Tensor) -> Tensor:
        features = timestep_embedding(t, self.sinusoid_dim, self.max_period)
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class FiLM(nn.Module):
    """Feature-wise linear modulation (Perez et al. 2018, FiLM, eq. 1-3), zero-initialised.

    A linear map of the conditioning vector ``c`` gives a per-channel ``(scale, shift)``; the output is
    ``x * (1 + scale) + shift`` (the ``1 +`` form of ADM's scale-shift norm, Dhariwal & Nichol 2021), so the
    layer is exactly the identity at initialisation. Apply any activation to ``c`` before calling.

    Args:
        cond_dim: size ``C_cond`` of the conditioning vector ``(B, C_cond)``.
        channels: number of modulated channels ``C``.
        channel_dim: axis of ``x`` holding the channels: 1 for feature maps ``(B, C, *spatial)`` of any rank,
            -1 for token sequences ``(B, N, C)``.
    """

    def __init__(self, cond_dim: int, channels: int, channel_dim: int = 1):
        super().__init__()
        self.channels = channels
        self.channel_dim = channel_dim
        self.to_scale_shift = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.to_scale_shift.weight)
        nn.init.zeros_(self.to_scale_shift.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        scale, shift = self.to_scale_shift(cond).chunk(2, dim=-1)
        shape = [x.shape[0]] + [1] * (x.ndim - 1)
        shape[self.channel_dim] = self.channels
        return x * (1 + scale.reshape(shape)) + shift.reshape(shape)


def _merge_masks(attn_mask: Tensor | None, key_padding_mask: Tensor | None, query_dtype: torch.dtype) -> Tensor | None:
    """One mask in scaled_dot_product_attention's convention (bool True = may attend, float = added)."""
    if attn_mask is not None and attn_mask.dtype != torch.bool:
        attn_mask = attn_mask.to(query_dtype)
    if key_padding_mask is None:
        return attn_mask
    keep = ~key_padding_mask.bool()[:, None, None, :]  # (B, 1, 1, N_k)
    if attn_mask is None:
        return keep
    if attn_mask.dtype == torch.bool:
        return attn_mask & keep
    return attn_mask.masked_fill(~keep, float("-inf"))


class Attention(nn.Module):
    """Multi-head (self- or cross-) attention (Vaswani et al. 2017, §3.2) on `F.scaled_dot_product_attention`.

    Args:
        dim: token width ``D`` of the queries (and of the output).
        num_heads: number of heads; must divide ``dim``.
        context_dim: width of the context tokens for cross-attention; defaults to ``dim``.
        dropout: attention-weight dropout during training.
        qkv_bias: whether the q/k/v projections have a bias.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        context_dim: int | None = None,
        dropout: float = 0.0,
        qkv_bias: bool = True,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide dim={dim}")
        self.num_heads = num_heads
        self.dropout = dropout
        context_dim = context_dim or dim
        self.to_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.to_kv = nn.Linear(context_dim, 2 * dim, bias=qkv_bias)
        self.to_out = nn.Linear(dim, dim)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        attn_mask: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """Attend from ``x`` (B, N, D) to ``context`` (B, M, D_ctx), or to ``x`` itself when it is None.

        ``key_padding_mask`` (B, M) is True at padded keys, which are ignored (nn.MultiheadAttention's
        convention). ``attn_mask`` follows scaled_dot_product_attention: a bool mask is True where a query may
        attend, a float mask is added to the logits; shape (N, M), (B, 1, N, M) or (B, heads, N, M). A query
        whose keys are all masked gets NaN, as in PyTorch.
        """
        context = x if context is None else context
        q = rearrange(self.to_q(x), "b n (h d) -> b h n d", h=self.num_heads)
        k, v = rearrange(self.to_kv(context), "b m (two h d) -> two b h m d", two=2, h=self.num_heads)
        mask = _merge_masks(attn_mask, key_padding_mask, q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block (Vaswani et al. 2017 with the pre-LN placement of Xiong et al. 2020).

    ``x = x + SelfAttn(LN(x))``; ``x = x + CrossAttn(LN(x), context)`` when ``context_dim`` is set;
    ``x = x + MLP(LN(x))`` with a GELU MLP of width ``mlp_ratio * dim``. With ``cond_dim`` set, every LN
    output is modulated by a zero-initialised `FiLM` of the vector ``cond`` (adaLN as in DiT, Peebles & Xie
    2023, without the gates), so the block starts as the unconditioned one.

    Args:
        dim: token width ``D``; input and output are ``(B, N, D)``.
        num_heads: attention heads (must divide ``dim``).
        mlp_ratio: hidden width of the MLP relative to ``dim``.
        dropout: dropout on attention weights and after each residual branch.
        context_dim: width of the context sequence; enables cross-attention.
        cond_dim: size of a conditioning vector ``(B, cond_dim)``; enables adaLN-style FiLM.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        context_dim: int | None = None,
        cond_dim: int | None = None,
    ):
        super().__init__()
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, num_heads, dropout=dropout)
        self.has_cross = context_dim is not None
        if self.has_cross:
            self.norm_cross = nn.LayerNorm(dim)
            self.cross_attn = Attention(dim, num_heads, context_dim=context_dim, dropout=dropout)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.residual_dropout = nn.Dropout(dropout)
        self.films = None
        if cond_dim is not None:
            names = ["self", "cross", "mlp"] if self.has_cross else ["self", "mlp"]
            self.films = nn.ModuleDict({n: FiLM(cond_dim, dim, channel_dim=-1) for n in names})

    def _norm(self, name: str, norm: nn.LayerNorm, x: Tensor, cond: Tensor | None) -> Tensor:
        h = norm(x)
        if self.films is not None:
            if cond is None:
                raise ValueError("this TransformerBlock was built with cond_dim; pass cond=(B, cond_dim)")
            h = self.films[name](h, cond)
        return h

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        cond: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        context_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """x (B, N, D); context (B, M, context_dim); cond (B, cond_dim); masks as in `Attention.forward`
        (``key_padding_mask`` (B, N) and ``attn_mask`` for self-attention, ``context_padding_mask`` (B, M) for
        cross-attention)."""
        h = self._norm("self", self.norm_self, x, cond)
        x = x + self.residual_dropout(self.self_attn(h, attn_mask=attn_mask, key_padding_mask=key_padding_mask))
        if self.has_cross:
            if context is None:
                raise ValueError("this TransformerBlock was built with context_dim; pass context=(B, M, C)")
            h = self._norm("cross", self.norm_cross, x, cond)
            x = x + self.residual_dropout(self.cross_attn(h, context, key_padding_mask=context_padding_mask))
        h = self._norm("mlp", self.norm_mlp, x, cond)
        return x + self.residual_dropout(self.mlp(h))
