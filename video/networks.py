"""DIVD's video U-Net: 2-D residual blocks on every frame, window-based temporal self-attention (WTSA) with
multi-frame relative positional encoding (MRPE) across the frames of a clip.

DIVD (Long, Wang & Wang, arXiv 2412.00773) names WTSA and MRPE but publishes no code and few hyper-parameters; the
layout below is ours and documented as such in docs/video.md:

- Frames are folded into the batch, ``(B, T, C, H, W) -> (B*T, C, H, W)``, for the core's ADM residual blocks
  (GroupNorm, SiLU, FiLM of the timestep embedding).
- WTSA: the feature map of a clip is cut into non-overlapping ``w x w`` spatial windows; the ``T * w * w`` tokens
  of one window (every frame) attend to each other, so a pixel can gather detail from where the same content sits in
  a neighbouring, sharper frame: alignment without optical flow. With ``temporal=False`` each frame's window only
  attends within its frame (the "without WTSA" ablation: same parameters, no temporal mixing).
- MRPE: a learnable bias per head indexed by the relative offset ``(dt, dy, dx)`` of two tokens, added to the
  attention logits (a table of ``(2T-1)(2w-1)(2w-1)`` entries, as Swin-3D's relative position bias). Without it
  attention is blind to where in the window and in the clip a token sits (the "without MRPE" ablation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from diffusekit.core.layers import Attention, TimestepEmbedder
from diffusekit.core.unet import ResidualBlock

__all__ = ["VideoUNet", "WindowTemporalAttention", "relative_position_index"]


def relative_position_index(frames: int, window: int, max_frames: int) -> Tensor:
    """(N, N) indices into the MRPE table for the N = frames * window^2 tokens of one window, for a table sized
    for ``max_frames``: index = ((dt + Tm - 1) * (2w - 1) + dy + w - 1) * (2w - 1) + dx + w - 1."""
    t, y, x = torch.meshgrid(torch.arange(frames), torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([t.flatten(), y.flatten(), x.flatten()])  # (3, N)
    rel = coords[:, :, None] - coords[:, None, :]  # (3, N, N)
    span = 2 * window - 1
    return ((rel[0] + max_frames - 1) * span + rel[1] + window - 1) * span + rel[2] + window - 1


class WindowTemporalAttention(nn.Module):
    """Residual multi-head self-attention inside ``window x window`` spatial windows across the clip's frames
    (WTSA), with an optional relative-position bias over (dt, dy, dx) (MRPE).

    Args:
        channels: feature width; heads: attention heads (must divide ``channels``).
        window: spatial window side ``w``; the feature map's sides must be multiples of it.
        max_frames: the longest clip the MRPE table covers (clips may be shorter).
        temporal: attend across frames (WTSA); False: within each frame only.
        relative_position: add the MRPE bias.
    """

    def __init__(
        self,
        channels: int,
        heads: int,
        window: int,
        max_frames: int,
        temporal: bool = True,
        relative_position: bool = True,
        groups: int = 8,
    ):
        super().__init__()
        self.window, self.max_frames, self.temporal = window, max_frames, temporal
        self.norm = nn.GroupNorm(max(g for g in range(1, groups + 1) if channels % g == 0), channels)
        self.attn = Attention(channels, heads)
        self.bias = None
        if relative_position:
            frames = max_frames if temporal else 1
            self.bias = nn.Parameter(torch.zeros(heads, (2 * frames - 1) * (2 * window - 1) ** 2))
            nn.init.trunc_normal_(self.bias, std=0.02)
        self._index_cache: dict[tuple[int, str], Tensor] = {}

    def _bias(self, frames: int, device: torch.device) -> Tensor | None:
        if self.bias is None:
            return None
        key = (frames, str(device))
        if key not in self._index_cache:
            table_frames = self.max_frames if self.temporal else 1
            self._index_cache[key] = relative_position_index(frames, self.window, table_frames).to(device)
        index = self._index_cache[key]
        return self.bias[:, index]  # (heads, N, N), added to the logits

    def forward(self, x: Tensor, frames: int) -> Tensor:
        """x: (B*T, C, H, W) with the T frames of a clip adjacent in the batch."""
        bt, c, h, w = x.shape
        win = self.window
        if h % win or w % win:
            raise ValueError(f"feature map {h}x{w} is not a multiple of the attention window {win}")
        if self.temporal and frames > self.max_frames:
            raise ValueError(f"a clip of {frames} frames exceeds the MRPE table's {self.max_frames}")
        group = frames if self.temporal else 1  # frames that share a window's attention
        tokens = rearrange(self.norm(x), "(b t) c (hn hw) (wn ww) -> (b hn wn) (t hw ww) c", t=group, hw=win, ww=win)
        out = self.attn(tokens, attn_mask=self._bias(group, x.device))
        out = rearrange(
            out, "(b hn wn) (t hw ww) c -> (b t) c (hn hw) (wn ww)", hn=h // win, wn=w // win, t=group, hw=win
        )
        return x + out


class VideoUNet(nn.Module):
    """A U-Net over clips ``(B, T, C, H, W)``: per-frame residual blocks, WTSA(+MRPE) at ``attention_levels``.

    ``forward(x, t, cond=None)``: ``x`` (B, T, C_in, H, W) is concatenated on the channel axis with ``cond``
    (B, T, C_cond, H, W) (DIVD's conditioning on the blurry frames); ``t`` (B,) diffusion timesteps, or None for a
    deterministic network (the predictor and the regression baseline: no time embedding at all).
    H and W must be multiples of ``size_multiple``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        cond_channels: int = 0,
        channels: Sequence[int] = (64, 128, 256),
        num_res_blocks: int = 2,
        attention_levels: Sequence[int] = (1, 2),
        attention_heads: int = 4,
        window: int = 8,
        max_frames: int = 5,
        temporal: bool = True,
        relative_position: bool = True,
        timestep: bool = True,
        norm_groups: int = 8,
        dropout: float = 0.0,
    ):
        super().__init__()
        if not channels or num_res_blocks < 1:
            raise ValueError("need at least one level (channels) and one residual block per level")
        levels = len(channels)
        self.in_channels, self.out_channels, self.cond_channels = in_channels, out_channels, cond_channels
        self.max_frames = max_frames
        self.size_multiple = 2 ** (levels - 1) * (window if attention_levels else 1)
        emb_dim = 4 * channels[0]
        self.time_embed = TimestepEmbedder(emb_dim, sinusoid_dim=channels[0]) if timestep else None
        self.emb_dim = emb_dim
        attention = {level % levels for level in attention_levels}

        def res(cin: int, cout: int) -> ResidualBlock:
            return ResidualBlock(cin, cout, emb_dim, 2, 3, norm_groups, dropout)

        def attn(ch: int, level: int) -> nn.Module | None:
            if level not in attention:
                return None
            return WindowTemporalAttention(
                ch, attention_heads, window, max_frames, temporal, relative_position, norm_groups
            )

        self.stem = nn.Conv2d(in_channels + cond_channels, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        skips, ch = [channels[0]], channels[0]
        for level, width in enumerate(channels):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(nn.ModuleList([res(ch, width), attn(width, level) or nn.Identity()]))
                ch = width
                skips.append(ch)
            down = nn.Conv2d(ch, ch, 3, stride=2, padding=1) if level < levels - 1 else nn.Identity()
            if level < levels - 1:
                skips.append(ch)
            self.down.append(nn.ModuleList([blocks, down]))
        self.middle = nn.ModuleList([res(ch, ch), attn(ch, levels - 1) or nn.Identity(), res(ch, ch)])
        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            width = channels[level]
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(nn.ModuleList([res(ch + skips.pop(), width), attn(width, level) or nn.Identity()]))
                ch = width
            up = nn.Conv2d(ch, ch, 3, padding=1) if level > 0 else nn.Identity()
            self.up.append(nn.ModuleList([blocks, up]))
        self.out = nn.Sequential(
            nn.GroupNorm(max(g for g in range(1, norm_groups + 1) if ch % g == 0), ch),
            nn.SiLU(),
            nn.Conv2d(ch, out_channels, 3, padding=1),
        )
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    @staticmethod
    def _run(block: nn.Module, h: Tensor, frames: int) -> Tensor:
        return block(h, frames) if isinstance(block, WindowTemporalAttention) else block(h)

    def forward(self, x: Tensor, t: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        b, frames, _, height, width = x.shape
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(f"frames of {height}x{width} are not multiples of {self.size_multiple} (pad them)")
        if cond is not None:
            x = torch.cat([x, cond.to(x.dtype)], dim=2)
        h = self.stem(x.flatten(0, 1))
        if self.time_embed is not None and t is not None:
            emb = self.time_embed(t).repeat_interleave(frames, dim=0)
        else:
            emb = h.new_zeros(h.shape[0], self.emb_dim)
        hs = [h]
        for blocks, down in self.down:
            for res, att in blocks:
                h = self._run(att, res(h, emb), frames)
                hs.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                hs.append(h)
        h = self.middle[2](self._run(self.middle[1], self.middle[0](h, emb), frames), emb)
        for blocks, up in self.up:
            for res, att in blocks:
                h = self._run(att, res(torch.cat([h, hs.pop()], dim=1), emb), frames)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(h).unflatten(0, (b, frames))
