"""Diffusion Policy's 1-D temporal U-Net (Chi et al., RSS 2023, §III-B; ``ConditionalUnet1D`` of the official code).

The noisy action chunk (B, T, Da) is convolved along time. Every residual block is Conv1d-GroupNorm-Mish, FiLM of
the conditioning vector (per-channel scale and bias from Mish-Linear), Conv1d-GroupNorm-Mish, plus a 1x1 residual
conv when the width changes. The conditioning vector is the diffusion-step embedding (sinusoid -> Linear(4 d) ->
Mish -> Linear(d)) concatenated with the flattened observation history ("global conditioning"). Down: two blocks
and a stride-2 conv per level (none at the last); middle: two blocks; up: skip concatenation, two blocks and a
stride-2 transposed conv; head: a conv block and a 1x1 conv. As in the official code the finest level's skip is
never used by the up path (it has one level fewer), so T must be divisible by 2^(levels - 1).

The core's `UNet1D` is ADM-style (GroupNorm-SiLU before the conv, scale-shift after the second norm); this module
keeps DP's exact block order so that the paper configuration means what it says.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from diffusekit.core import timestep_embedding

__all__ = ["ConditionalUnet1D"]


def _conv_block(cin: int, cout: int, kernel: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, kernel, padding=kernel // 2), nn.GroupNorm(groups, cout), nn.Mish())


class ConditionalResidualBlock1D(nn.Module):
    """conv block -> FiLM(cond) (scale and bias, or bias only) -> conv block, plus the residual."""

    def __init__(self, cin: int, cout: int, cond_dim: int, kernel: int, groups: int, scale: bool = True):
        super().__init__()
        self.first, self.second = _conv_block(cin, cout, kernel, groups), _conv_block(cout, cout, kernel, groups)
        self.scale = scale
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * cout if scale else cout))
        self.residual = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        out = self.first(x)
        film = self.film(cond)[..., None]
        if self.scale:
            scale, bias = film.chunk(2, dim=1)
            out = scale * out + bias
        else:
            out = out + film
        return self.second(out) + self.residual(x)


class ConditionalUnet1D(nn.Module):
    """``(x_t (B, T, action_dim), t (B,), global_cond (B, cond_dim)) -> (B, T, action_dim)``.

    Args:
        action_dim: action width Da.
        global_cond_dim: width of the flattened observation history (n_obs x obs_dim).
        down_dims: channel widths per level (DP lowdim: 256, 512, 1024).
        step_embed_dim: diffusion-step embedding width (DP lowdim: 256).
        kernel: conv kernel size (5); groups: GroupNorm groups (8); film_scale: FiLM scale and bias (True) or bias.
    """

    def __init__(
        self,
        action_dim: int,
        global_cond_dim: int,
        down_dims: Sequence[int] = (256, 512, 1024),
        step_embed_dim: int = 256,
        kernel: int = 5,
        groups: int = 8,
        film_scale: bool = True,
    ):
        super().__init__()
        self.step_embed_dim = step_embed_dim
        self.levels = len(down_dims)
        self.step_encoder = nn.Sequential(
            nn.Linear(step_embed_dim, 4 * step_embed_dim), nn.Mish(), nn.Linear(4 * step_embed_dim, step_embed_dim)
        )
        cond_dim = step_embed_dim + global_cond_dim
        widths = [action_dim, *down_dims]
        pairs = list(zip(widths[:-1], widths[1:]))

        def block(cin: int, cout: int) -> ConditionalResidualBlock1D:
            return ConditionalResidualBlock1D(cin, cout, cond_dim, kernel, groups, film_scale)

        self.down = nn.ModuleList()
        for i, (cin, cout) in enumerate(pairs):
            last = i == len(pairs) - 1
            sample = nn.Identity() if last else nn.Conv1d(cout, cout, 3, 2, 1)
            self.down.append(nn.ModuleList([block(cin, cout), block(cout, cout), sample]))
        self.mid = nn.ModuleList([block(down_dims[-1], down_dims[-1]), block(down_dims[-1], down_dims[-1])])
        self.up = nn.ModuleList()
        for cin, cout in reversed(pairs[1:]):  # every up level upsamples (one level fewer than down)
            self.up.append(
                nn.ModuleList([block(2 * cout, cin), block(cin, cin), nn.ConvTranspose1d(cin, cin, 4, 2, 1)])
            )
        self.head = nn.Sequential(_conv_block(down_dims[0], down_dims[0], kernel, groups),
                                  nn.Conv1d(down_dims[0], action_dim, 1))  # fmt: skip

    def forward(self, x: torch.Tensor, t: torch.Tensor, global_cond: torch.Tensor) -> torch.Tensor:
        horizon = x.shape[1]
        if horizon % 2 ** (self.levels - 1):
            raise ValueError(f"horizon {horizon} must be divisible by {2 ** (self.levels - 1)} for this U-Net")
        t = t.expand(x.shape[0]) if t.ndim == 1 and t.shape[0] == 1 else t
        emb = self.step_encoder(timestep_embedding(t, self.step_embed_dim).to(x.dtype))
        cond = torch.cat([emb, global_cond], dim=-1)
        h = rearrange(x, "b t d -> b d t")
        skips = []
        for first, second, down in self.down:
            h = second(first(h, cond), cond)
            skips.append(h)
            h = down(h)
        for block in self.mid:
            h = block(h, cond)
        for first, second, up in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = up(second(first(h, cond), cond))
        return rearrange(self.head(h), "b d t -> b t d")
