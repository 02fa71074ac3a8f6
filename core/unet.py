"""Conditional U-Nets for diffusion: `UNet1D` (sequences, action chunks) and `UNet2D` (images, masks, maps).

The design follows the DDPM / ADM U-Net (Ho et al. 2020; Dhariwal & Nichol 2021, "Diffusion Models Beat GANs")
and Diffusion Policy's ConditionalUnet1D (Chi et al. 2023): residual blocks with GroupNorm and SiLU whose
features are modulated by FiLM of a time (+ global condition) embedding, down/up-sampling by 2 with skip
connections, optional self-attention at chosen levels and a zero-initialised output layer. One implementation
serves both ranks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .layers import Attention, FiLM, TimestepEmbedder

__all__ = ["UNet1D", "UNet2D"]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}


def _num_groups(channels: int, max_groups: int) -> int:
    """The largest group count <= max_groups that divides ``channels`` (for GroupNorm, Wu & He 2018)."""
    return max(g for g in range(1, min(max_groups, channels) + 1) if channels % g == 0)


class ResidualBlock(nn.Module):
    """GroupNorm-SiLU-conv, then GroupNorm, FiLM(embedding), SiLU, dropout, conv, plus a (1x1) skip.

    The FiLM placement after the second GroupNorm is ADM's ``use_scale_shift_norm``.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dims: int, kernel: int, groups: int, dropout: float):
        super().__init__()
        conv = _CONV[dims]
        self.norm1 = nn.GroupNorm(_num_groups(in_ch, groups), in_ch)
        self.conv1 = conv(in_ch, out_ch, kernel, padding=kernel // 2)
        self.norm2 = nn.GroupNorm(_num_groups(out_ch, groups), out_ch)
        self.film = FiLM(emb_dim, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv(out_ch, out_ch, kernel, padding=kernel // 2)
        self.skip = conv(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = F.silu(self.film(self.norm2(h), emb))
        return self.skip(x) + self.conv2(self.dropout(h))


class SelfAttentionBlock(nn.Module):
    """Residual multi-head self-attention over all positions of a feature map (ADM's AttentionBlock)."""

    def __init__(self, channels: int, num_heads: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(_num_groups(channels, groups), channels)
        self.attn = Attention(channels, num_heads)

    def forward(self, x: Tensor) -> Tensor:
        tokens = rearrange(self.norm(x), "b c ... -> b (...) c")
        return x + self.attn(tokens).transpose(1, 2).reshape(x.shape)


class _UNet(nn.Module):
    """The shared implementation; `UNet1D` and `UNet2D` set the rank and the defaults."""

    spatial_dims: int
    default_kernel_size: int
    default_norm_groups: int

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        channels: Sequence[int] = (64, 128, 256),
        num_res_blocks: int = 2,
        attention_levels: Sequence[int] = (),
        attention_heads: int = 4,
        cond_channels: int = 0,
        global_cond_dim: int | None = None,
        time_embed_dim: int | None = None,
        dropout: float = 0.0,
        kernel_size: int | None = None,
        norm_groups: int | None = None,
    ):
        super().__init__()
        if not channels or num_res_blocks < 1:
            raise ValueError("need at least one level (channels) and one residual block per level")
        dims = self.spatial_dims
        kernel_size = kernel_size or self.default_kernel_size
        norm_groups = norm_groups or self.default_norm_groups
        self.in_channels = in_channels
        self.out_channels = out_channels or in_channels
        self.cond_channels = cond_channels
        self.global_cond_dim = global_cond_dim
        self.num_levels = len(channels)
        self.size_multiple = 2 ** (self.num_levels - 1)
        attention = {level % self.num_levels for level in attention_levels}
        emb_dim = time_embed_dim or 4 * channels[0]
        conv = _CONV[dims]

        def res(cin: int, cout: int) -> ResidualBlock:
            return ResidualBlock(cin, cout, emb_dim, dims, kernel_size, norm_groups, dropout)

        def attn(ch: int, enabled: bool) -> nn.Module:
            return SelfAttentionBlock(ch, attention_heads, norm_groups) if enabled else nn.Identity()

        def level_blocks(in_ch: int, out_ch: int, level: int) -> tuple[nn.ModuleList, nn.ModuleList]:
            blocks = [res(in_ch if i == 0 else out_ch, out_ch) for i in range(num_res_blocks)]
            attns = [attn(out_ch, level in attention) for _ in range(num_res_blocks)]
            return nn.ModuleList(blocks), nn.ModuleList(attns)

        self.time_embed = TimestepEmbedder(emb_dim, sinusoid_dim=channels[0])
        self.global_embed = None
        if global_cond_dim is not None:
            self.global_embed = nn.Sequential(
                nn.Linear(global_cond_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
            )
        self.input_conv = conv(in_channels + cond_channels, channels[0], kernel_size, padding=kernel_size // 2)

        self.down_blocks, self.down_attn = nn.ModuleList(), nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        ch = channels[0]
        for level, out_ch in enumerate(channels):
            blocks, attns = level_blocks(ch, out_ch, level)
            self.down_blocks.append(blocks)
            self.down_attn.append(attns)
            last = level == self.num_levels - 1
            self.downsamplers.append(nn.Identity() if last else conv(out_ch, out_ch, 3, stride=2, padding=1))
            ch = out_ch

        lowest = self.num_levels - 1
        self.mid_block1 = res(ch, ch)
        self.mid_attn = attn(ch, lowest in attention)
        self.mid_block2 = res(ch, ch)

        self.up_blocks, self.up_attn, self.upsamplers = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(self.num_levels)):
            out_ch = channels[level]
            self.upsamplers.append(nn.Identity() if level == lowest else conv(ch, ch, 3, padding=1))
            blocks, attns = level_blocks(ch + out_ch, out_ch, level)
            self.up_blocks.append(blocks)
            self.up_attn.append(attns)
            ch = out_ch

        self.out_norm = nn.GroupNorm(_num_groups(ch, norm_groups), ch)
        self.out_conv = conv(ch, self.out_channels, kernel_size, padding=kernel_size // 2)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def _embedding(self, t: Tensor | float, batch: int, global_cond: Tensor | None, ref: Tensor) -> Tensor:
        t = torch.as_tensor(t, device=ref.device)
        if t.ndim == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"t must have shape ({batch},) or be a scalar, got {tuple(t.shape)}")
        emb = self.time_embed(t)
        if self.global_embed is not None:
            if global_cond is None or global_cond.shape != (batch, self.global_cond_dim):
                got = None if global_cond is None else tuple(global_cond.shape)
                raise ValueError(f"global_cond must have shape ({batch}, {self.global_cond_dim}), got {got}")
            emb = emb + self.global_embed(global_cond.to(emb.dtype))
        elif global_cond is not None:
            raise ValueError("global_cond given but the U-Net was built without global_cond_dim")
        return F.silu(emb)

    def _concat_cond(self, x: Tensor, cond: Tensor | None) -> Tensor:
        if self.cond_channels == 0:
            if cond is not None:
                raise ValueError("cond given but the U-Net was built with cond_channels=0")
            return x
        expected = (x.shape[0], self.cond_channels, *x.shape[2:])
        if cond is None or tuple(cond.shape) != expected:
            got = None if cond is None else tuple(cond.shape)
            raise ValueError(f"cond must have shape {expected} (same spatial shape as x), got {got}")
        return torch.cat([x, cond.to(x.dtype)], dim=1)

    def forward(
        self,
        x: Tensor,
        t: Tensor | float,
        cond: Tensor | None = None,
        global_cond: Tensor | None = None,
        features: Tensor | None = None,
    ) -> Tensor:
        """Predict a tensor of shape (B, out_channels, *x.shape[2:]) from the noisy ``x``, the timesteps ``t``
        ((B,) long or float, or a scalar for the whole batch) and the conditions. ``features`` (B, channels[0],
        *x.shape[2:]) are added to the input convolution's output (the additive conditioning of MedSegDiff and
        Echo-DND, whose condition network injects its feature maps there)."""
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            axes = "L" if self.spatial_dims == 1 else "H, W"
            raise ValueError(f"x must be (B, {self.in_channels}, {axes}), got {tuple(x.shape)}")
        spatial = x.shape[2:]
        emb = self._embedding(t, x.shape[0], global_cond, x)
        h = self._concat_cond(x, cond)
        # Zero-pad the end of every spatial axis to a multiple of 2**(levels-1); cropped back at the end.
        padding: list[int] = []
        for size in reversed(spatial):
            padding += [0, -size % self.size_multiple]
        h = self.input_conv(F.pad(h, padding))
        if features is not None:
            expected = (x.shape[0], h.shape[1], *spatial)
            if tuple(features.shape) != expected:
                raise ValueError(f"features must have shape {expected}, got {tuple(features.shape)}")
            h = h + F.pad(features.to(h.dtype), padding)

        skips = []
        for blocks, attns, down in zip(self.down_blocks, self.down_attn, self.downsamplers):
            for block, attn in zip(blocks, attns):
                h = attn(block(h, emb))
            skips.append(h)
            h = down(h)
        h = self.mid_block2(self.mid_attn(self.mid_block1(h, emb)), emb)
        for blocks, attns, up in zip(self.up_blocks, self.up_attn, self.upsamplers):
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
            h = torch.cat([h, skips.pop()], dim=1)
            for block, attn in zip(blocks, attns):
                h = attn(block(h, emb))
        h = self.out_conv(F.silu(self.out_norm(h)))
        return h[(slice(None), slice(None), *(slice(0, size) for size in spatial))]


class UNet1D(_UNet):
    """Conditional 1-D U-Net for ``(B, C, L)`` sequences (Diffusion Policy's ConditionalUnet1D, Chi et al.
    2023).

    Args:
        in_channels: channels ``C`` of ``x``.
        out_channels: channels of the output; defaults to ``in_channels``.
        channels: width of each resolution level; ``len(channels) - 1`` halvings of ``L``.
        num_res_blocks: residual blocks per level (down and up paths).
        attention_levels: levels (0 = full resolution, -1 = lowest) with self-attention after every block;
            the lowest level also enables attention in the middle block.
        attention_heads: heads of those attention blocks (must divide the level's width).
        cond_channels: channels of ``cond`` (concatenated to ``x``; same ``L``), 0 for none.
        global_cond_dim: size of the ``global_cond`` vector added to the time embedding; None for none.
        time_embed_dim: size of the time embedding; defaults to ``4 * channels[0]`` (ADM).
        dropout: dropout inside residual blocks.
        kernel_size: convolution kernel; default 5 (Diffusion Policy).
        norm_groups: the largest GroupNorm group count (default 8); the actual count divides each width.

    ``forward(x, t, cond=None, global_cond=None)`` accepts any length ``L`` (zero-padded internally to a
    multiple of ``2**(len(channels)-1)`` and cropped back) and returns ``(B, out_channels, L)``. The output
    layer is zero-initialised, as are the FiLM layers, so the untrained net outputs zeros.
    """

    spatial_dims = 1
    default_kernel_size = 5
    default_norm_groups = 8


class UNet2D(_UNet):
    """Conditional 2-D U-Net for ``(B, C, H, W)`` images and maps (the DDPM / ADM U-Net, Ho et al. 2020).

    Arguments as in `UNet1D` (defaults: ``kernel_size=3``, ``norm_groups=32``); ``cond`` has shape
    ``(B, cond_channels, H, W)``. Any ``H, W`` work (padded internally and cropped back).
    """

    spatial_dims = 2
    default_kernel_size = 3
    default_norm_groups = 32
