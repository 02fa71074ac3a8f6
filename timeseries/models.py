"""The ImDiffusion denoiser: a CSDI-style residual network with temporal and feature transformers.

ImDiffusion (Chen et al., VLDB 2024, arXiv 2307.00754; code ``17000cyh/IMDiffusion``, ``diff_models.py``) uses the
CSDI denoiser (Tashiro et al., NeurIPS 2021; ``ermongroup/CSDI``) plus a learned "strategy" (mask-type) embedding.
This is a re-implementation of the same maths in a channels-last layout ``(B, L, K, C)`` (time-major):

- the released 1x1 ``Conv1d`` layers on ``(B, C, K*L)`` are per-token ``nn.Linear`` layers here (same function);
- each 1-layer post-norm ``nn.TransformerEncoder`` (GELU, FFN 64) is `AxialEncoderLayer`: one in-projection and
  ``F.scaled_dot_product_attention`` over the time axis (CSDI's batch ``B*K``) or the feature axis (batch ``B*L``).
  In ``(B, L, K, C)`` both attentions are strided *views* (time: ``(B, K*heads, L, d)``, feature:
  ``(B*L, heads, K, d)``) and the kernel writes its output back in ``(B, L, K, C)``: no permute copies of activations;
- the side information (time and feature embeddings) is the same for every window, so its 1x1 projection is
  computed once per forward on ``(L, K)`` and broadcast over the batch (the released code projects it B times).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffusekit.core.layers import timestep_embedding

__all__ = ["AxialEncoderLayer", "ImDiffusionNet", "csdi_step_embedding"]


def csdi_step_embedding(t: Tensor, dim: int = 128) -> Tensor:
    """CSDI's diffusion-step sinusoid: ``[sin(t f_i), cos(t f_i)]`` with ``f_i = 10^(4 i / (dim/2 - 1))``.

    ``i = 0 .. dim/2 - 1`` (``DiffusionEmbedding._build_embedding`` in CSDI and ImDiffusion: 64 sin + 64 cos for
    ``dim=128``). Unlike `diffusekit.core.timestep_embedding`, the frequencies *increase* from 1 to 10^4.

    Args:
        t: timesteps ``(B,)`` (integer or float).
        dim: embedding size (even).

    Returns:
        float32 ``(B, dim)``.
    """
    if dim % 2 or dim < 4:
        raise ValueError(f"dim must be even and >= 4, got {dim}")
    half = dim // 2
    # same float32 operation order as the released table: angles reach 49 * 10^4 rad, where rounding is visible
    frequencies = 10.0 ** (torch.arange(half, dtype=torch.float32, device=t.device) / (half - 1) * 4.0)
    angles = t.float().reshape(-1, 1) * frequencies
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def _kaiming_linear(in_features: int, out_features: int) -> nn.Linear:
    """A Linear standing for CSDI's ``Conv1d_with_init`` (1x1 conv, ``kaiming_normal_`` weight, default bias)."""
    layer = nn.Linear(in_features, out_features)
    nn.init.kaiming_normal_(layer.weight)
    return layer


class AxialEncoderLayer(nn.Module):
    """One post-norm transformer encoder layer over one axis of a ``(B, L, K, C)`` tensor.

    The maths of ``nn.TransformerEncoderLayer(d_model=C, nhead=heads, dim_feedforward=ffn_dim, activation="gelu")``
    (as CSDI's ``get_torch_trans`` builds it) applied to every sequence along ``axis``:

        ``x = LN1(x + Drop(MHA(x)))``, ``x = LN2(x + Drop(W2 Drop(GELU(W1 x))))``

    ``axis="time"`` attends over L for each (window, feature) pair (CSDI's ``forward_time``, batch ``B*K``);
    ``axis="feature"`` attends over K for each (window, time) pair (``forward_feature``, batch ``B*L``). Only the
    attention core depends on the axis; the projections, norms and FFN act per token in place.

    Parameter names mirror the PyTorch layer: ``qkv`` = ``self_attn.in_proj_*``, ``out`` = ``self_attn.out_proj``,
    ``ff1``/``ff2`` = ``linear1``/``linear2``, ``norm1``/``norm2``; initialisation matches it too (xavier-uniform
    ``in_proj_weight``, zero in/out-projection biases).

    Args:
        channels: model width ``C``.
        heads: attention heads (must divide ``C``).
        ffn_dim: FFN hidden width (64 in CSDI/ImDiffusion).
        axis: ``"time"`` or ``"feature"``.
        dropout: dropout on attention weights, after attention, inside and after the FFN (PyTorch's default 0.1 in
            the released code).
    """

    def __init__(self, channels: int, heads: int, ffn_dim: int, axis: str, dropout: float = 0.0):
        super().__init__()
        if channels % heads:
            raise ValueError(f"heads={heads} must divide channels={channels}")
        if axis not in ("time", "feature"):
            raise ValueError(f"axis must be 'time' or 'feature', got {axis!r}")
        self.channels, self.heads, self.axis, self.dropout = channels, heads, axis, float(dropout)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)
        self.ff1 = nn.Linear(channels, ffn_dim)
        self.ff2 = nn.Linear(ffn_dim, channels)
        self.norm1 = nn.LayerNorm(channels)
        self.norm2 = nn.LayerNorm(channels)
        nn.init.xavier_uniform_(self.qkv.weight)
        nn.init.zeros_(self.qkv.bias)
        nn.init.zeros_(self.out.bias)

    def _attention(self, x: Tensor) -> Tensor:
        b, length, k, c = x.shape
        h, d = self.heads, c // self.heads
        w, bias = self.qkv.weight, self.qkv.bias
        # Three matmuls on slices of the fused in-projection give three *dense* (B, L, K, C) tensors: the attention
        # kernel reads them through strided views and returns gradients in the same layout (no gathers, no stack).
        q, k_, v = (F.linear(x, w[i * c : (i + 1) * c], bias[i * c : (i + 1) * c]) for i in range(3))
        if self.axis == "time":
            # sequences over L; (K, heads) merge into one "head" axis of stride d: (B, K*H, L, d), a view
            q, k_, v = (z.view(b, length, k * h, d).transpose(1, 2) for z in (q, k_, v))
        else:
            # sequences over K; (B, L) merge into the batch axis: (B*L, H, K, d), a view
            q, k_, v = (z.view(b * length, k, h, d).transpose(1, 2) for z in (q, k_, v))
        o = F.scaled_dot_product_attention(q, k_, v, dropout_p=self.dropout if self.training else 0.0)
        # the CPU flash kernel returns (N, heads, S, d) as a transposed (N, S, heads, d) buffer, i.e. (B, L, K, C),
        # so this reshape is a view (any other kernel layout costs one copy here, same maths)
        return self.out(o.transpose(1, 2).reshape(b, length, k, c))

    def forward(self, x: Tensor) -> Tensor:
        """x ``(B, L, K, C)`` -> ``(B, L, K, C)``."""
        if x.shape[2 if self.axis == "feature" else 1] == 1:
            return x  # CSDI skips a transformer whose sequence has length 1
        p = self.dropout if self.training else 0.0
        x = self.norm1(x + F.dropout(self._attention(x), p, self.training))
        ff = self.ff2(F.dropout(F.gelu(self.ff1(x)), p, self.training))
        return self.norm2(x + F.dropout(ff, p, self.training))


class _ResidualLayer(nn.Module):
    """CSDI ``ResidualBlock`` without the embedding and side-info projections (hoisted into `ImDiffusionNet`)."""

    def __init__(self, channels: int, heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.time_layer = AxialEncoderLayer(channels, heads, ffn_dim, "time", dropout)
        self.feature_layer = AxialEncoderLayer(channels, heads, ffn_dim, "feature", dropout)
        self.mid_projection = _kaiming_linear(channels, 2 * channels)
        self.output_projection = _kaiming_linear(channels, 2 * channels)

    def forward(self, x: Tensor, emb: Tensor, side: Tensor) -> tuple[Tensor, Tensor]:
        """x ``(B, L, K, C)``; emb ``(B, 1, 1, C)`` (step + mask type); side ``(B or 1, L, K, 2C)``."""
        y = self.feature_layer(self.time_layer(x + emb))
        y = self.mid_projection(y) + side
        gate, filt = y.chunk(2, dim=-1)
        y = self.output_projection(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = y.chunk(2, dim=-1)
        return (x + residual) * (1.0 / math.sqrt(2.0)), skip


class ImDiffusionNet(nn.Module):
    """The ImDiffusion denoiser ε_θ(x_t, t, mask type | side info) (``diff_models.diff_CSDI`` in 17000cyh/IMDiffusion).

    Input ``(B, K, L)`` → 1x1 conv to ``channels`` + ReLU → ``layers`` residual layers → sum of skips / √layers →
    1x1 conv, ReLU, 1x1 conv to one channel (zero-initialised, so ε̂ = 0 at initialisation). Each residual layer adds
    the projected step embedding (CSDI sinusoid, `csdi_step_embedding`, then Linear+SiLU twice) and the projected
    mask-type embedding (``nn.Embedding(num_mask_types, step_embed_dim)``, no MLP, as released), runs the temporal
    then the feature transformer (`AxialEncoderLayer`), a 1x1 conv to 2C plus the projected side info, the gate
    σ(a)·tanh(b), and a 1x1 conv to 2C split into the residual (output ``(x + res)/√2``) and the skip.

    Side info: a ``time_embed_dim`` sinusoidal embedding of the positions 0..L-1 (CSDI ``time_embedding``, the
    frequencies of `diffusekit.core.timestep_embedding`; CSDI interleaves sin/cos, which only permutes the input
    columns of the learned projection), a ``feature_embed_dim`` learned embedding of the K features, and, in
    conditional mode, the cond mask.

    Modes (``main_model.py``): unconditional (ImDiffusion's choice, the default) takes one channel, the whole noised
    window; known entries are re-imposed by the sampler (``GaussianDiffusion.sample(known=, known_mask=)``).
    Conditional (the CSDI default) takes two channels ``[observed·cond_mask, x_t·(1 − cond_mask)]`` and appends the
    cond mask to the side info.

    Args:
        num_features: K (38 for SMD).
        channels: residual width (64).
        layers: residual layers (4).
        heads: attention heads (8).
        ffn_dim: transformer FFN width (64).
        step_embed_dim: diffusion-step (and mask-type) embedding size (128).
        time_embed_dim: side-info time embedding size (128).
        feature_embed_dim: side-info feature embedding size (16).
        num_mask_types: size of the mask-type ("strategy") vocabulary (2 grating masks); 0 disables it.
        conditional: CSDI conditional mode instead of ImDiffusion's unconditional mode.
        dropout: transformer dropout. The released code gets PyTorch's default 0.1 implicitly; 0 by default here.
            Set 0.1 to reproduce it exactly, at a cost on CPU: attention-weight dropout makes
            ``scaled_dot_product_attention`` leave the flash kernel for the math path (~3x slower training).
    """

    def __init__(
        self,
        num_features: int,
        channels: int = 64,
        layers: int = 4,
        heads: int = 8,
        ffn_dim: int = 64,
        step_embed_dim: int = 128,
        time_embed_dim: int = 128,
        feature_embed_dim: int = 16,
        num_mask_types: int = 2,
        conditional: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.num_features, self.channels, self.num_layers = num_features, channels, layers
        self.step_embed_dim, self.time_embed_dim = step_embed_dim, time_embed_dim
        self.num_mask_types, self.conditional = num_mask_types, conditional

        self.input_projection = _kaiming_linear(2 if conditional else 1, channels)
        self.step_mlp = nn.Sequential(
            nn.Linear(step_embed_dim, step_embed_dim),
            nn.SiLU(),
            nn.Linear(step_embed_dim, step_embed_dim),
            nn.SiLU(),
        )
        # every layer's Linear(step_embed_dim, C) projections, stacked into one matmul: (layers*C, step_embed_dim)
        self.step_projection = nn.Linear(step_embed_dim, layers * channels)
        if num_mask_types > 0:
            self.mask_type_embedding = nn.Embedding(num_mask_types, step_embed_dim)
            self.mask_type_projection = nn.Linear(step_embed_dim, layers * channels)
        self.feature_embedding = nn.Embedding(num_features, feature_embed_dim)
        side_dim = time_embed_dim + feature_embed_dim + (1 if conditional else 0)
        # every layer's cond_projection (1x1 conv side_dim -> 2C, kaiming), stacked: (layers*2C, side_dim)
        self.side_projection = nn.Linear(side_dim, layers * 2 * channels)
        with torch.no_grad():
            for block in self.side_projection.weight.view(layers, 2 * channels, side_dim):
                nn.init.kaiming_normal_(block)
        bound = 1.0 / math.sqrt(side_dim)
        nn.init.uniform_(self.side_projection.bias, -bound, bound)
        self.residual_layers = nn.ModuleList(_ResidualLayer(channels, heads, ffn_dim, dropout) for _ in range(layers))
        self.output_projection1 = _kaiming_linear(channels, channels)
        self.output_projection2 = nn.Linear(channels, 1)
        nn.init.zeros_(self.output_projection2.weight)  # as released
        nn.init.zeros_(self.output_projection2.bias)  # released: default init (a constant offset); zero: ε̂ = 0

    def _side(self, length: int, cond_mask: Tensor | None, dtype: torch.dtype, device: torch.device) -> Tensor:
        """Projected side info for all layers, ``(B or 1, L, K, layers*2C)``.

        The projection of ``[time_emb(l); feature_emb(k); mask]`` splits into ``W_t time_emb(l) + W_f feature_emb(k)
        + w_m mask + b``, so the (L, ·) and (K, ·) parts are projected separately and broadcast.
        """
        te, fe = self.time_embed_dim, self.time_embed_dim + self.feature_embedding.embedding_dim
        w = self.side_projection.weight
        pos = torch.arange(length, device=device)
        time_part = timestep_embedding(pos, te).to(dtype) @ w[:, :te].t()  # (L, layers*2C)
        feature_part = torch.addmm(self.side_projection.bias, self.feature_embedding.weight, w[:, te:fe].t())
        side = time_part[:, None, :] + feature_part[None, :, :]  # (L, K, layers*2C)
        if self.conditional:
            side = side + cond_mask.to(dtype).transpose(1, 2)[..., None] * w[:, fe]
        else:
            side = side[None]
        return side

    def forward(
        self,
        x_t: Tensor,
        t: Tensor,
        mask_type: Tensor | None = None,
        cond_mask: Tensor | None = None,
        observed: Tensor | None = None,
    ) -> Tensor:
        """Predict ε for ``x_t`` ``(B, K, L)`` at steps ``t`` ``(B,)``.

        Args:
            x_t: noised windows ``(B, K, L)``.
            t: diffusion steps, LongTensor ``(B,)`` (a scalar is broadcast).
            mask_type: mask-type ids ``(B,)`` in ``[0, num_mask_types)``; required when ``num_mask_types > 0``.
            cond_mask: conditional mode only: 1 at conditioning entries, ``(B, K, L)``.
            observed: conditional mode only: the clean windows ``(B, K, L)`` (read where ``cond_mask`` is 1).

        Returns:
            ε̂ ``(B, K, L)`` in ``x_t``'s dtype.
        """
        if x_t.ndim != 3 or x_t.shape[1] != self.num_features:
            raise ValueError(f"x_t must be (B, K={self.num_features}, L), got {tuple(x_t.shape)}")
        b, k, length = x_t.shape
        t = torch.as_tensor(t, device=x_t.device)
        t = t.expand(b) if t.ndim == 0 else t
        w_in = self.input_projection.weight  # (C, 1 or 2)
        if self.conditional:
            if cond_mask is None or observed is None:
                raise ValueError("conditional mode needs cond_mask and observed, each (B, K, L)")
            cond = cond_mask.to(x_t.dtype)
            co = (observed * cond).transpose(1, 2).contiguous()[..., None]
            ta = (x_t * (1 - cond)).transpose(1, 2).contiguous()[..., None]
            x = torch.addcmul(torch.addcmul(self.input_projection.bias, co, w_in[:, 0]), ta, w_in[:, 1])
        else:
            cond = None
            x = torch.addcmul(self.input_projection.bias, x_t.transpose(1, 2).contiguous()[..., None], w_in[:, 0])
        x = F.relu(x)

        emb = self.step_projection(self.step_mlp(csdi_step_embedding(t, self.step_embed_dim).to(x.dtype)))
        if self.num_mask_types > 0:
            if mask_type is None:
                raise ValueError("mask_type (B,) is required: the mask-type id must match the mask used")
            mask_type = torch.as_tensor(mask_type, device=x_t.device)
            mask_type = mask_type.expand(b) if mask_type.ndim == 0 else mask_type
            emb = emb + self.mask_type_projection(self.mask_type_embedding(mask_type))
        emb = emb.view(b, 1, 1, self.num_layers, self.channels)
        side = self._side(length, cond, x.dtype, x.device)  # (B or 1, L, K, layers*2C); x is (B, L, K, C)
        c2 = 2 * self.channels

        skips: Tensor | None = None
        for i, layer in enumerate(self.residual_layers):
            x, skip = layer(x, emb[..., i, :], side[..., i * c2 : (i + 1) * c2])
            skips = skip if skips is None else skips + skip
        h = F.relu(self.output_projection1(skips * (1.0 / math.sqrt(self.num_layers))))
        return self.output_projection2(h).squeeze(-1).transpose(1, 2).contiguous()
