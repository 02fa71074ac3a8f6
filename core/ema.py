"""Exponential moving average (EMA) of model weights for plain PyTorch training loops.

Built on `torch.optim.swa_utils.AveragedModel` with `get_ema_multi_avg_fn`: the first ``update_parameters``
call copies the weights, every later one does ``p_ema <- decay * p_ema + (1 - decay) * p`` (Polyak & Juditsky
1992; DDPM, Ho et al. 2020, uses decay 0.9999). With ``use_buffers=True`` buffers are averaged too
(GroupNorm / LayerNorm nets have none; BatchNorm running stats are averaged, but its integer
``num_batches_tracked`` is not meaningful in the EMA copy).

Training inside mmengine's ``Runner`` uses mmengine's ``EMAHook`` instead
(``custom_hooks=[dict(type="EMAHook", momentum=1 - decay)]``; mmengine's ``momentum`` is ``1 - decay``).

Typical loop::

    ema = make_ema(model, decay=0.999)
    for batch in loader:
        loss.backward(); optimizer.step(); optimizer.zero_grad()
        ema.update_parameters(model)
    sample_with(ema.module)            # or: copy_ema_to(ema, model)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["make_ema", "ema_decay_at", "copy_ema_to"]


def ema_decay_at(step: int, max_decay: float = 0.9999, power: float = 0.75, min_decay: float = 0.0) -> float:
    """Warm-up decay ``clip(1 - (1 + step) ** -power, min_decay, max_decay)``.

    The schedule of Diffusion Policy's EMAModel (Chi et al. 2023; ``power=0.75``, ``max_decay=0.9999``) and of
    diffusers' EMAModel with ``inv_gamma=1``: early averages forget the random initialisation quickly.
    """
    return min(max(1.0 - (1.0 + step) ** -power, min_decay), max_decay)


def _warmup_multi_avg_fn(max_decay: float, power: float, min_decay: float):
    @torch.no_grad()
    def update(ema_params: list[Tensor], model_params: list[Tensor], num_averaged: Tensor | int) -> None:
        # num_averaged >= 1 here: AveragedModel copies the weights on the first update.
        decay = ema_decay_at(int(num_averaged), max_decay, power, min_decay)
        get_ema_multi_avg_fn(decay)(ema_params, model_params, num_averaged)

    return update


def make_ema(
    model: nn.Module,
    decay: float = 0.999,
    *,
    warmup_power: float | None = None,
    use_buffers: bool = True,
    device: torch.device | str | None = None,
) -> AveragedModel:
    """An `AveragedModel` holding the EMA of ``model``'s parameters (and buffers); call
    ``ema.update_parameters(model)`` after each optimiser step and use ``ema.module`` (or ``ema(...)``) for
    evaluation.

    Args:
        model: the model being trained (deep-copied; the copy is put in eval mode with gradients off).
        decay: the EMA decay, or the maximum decay when ``warmup_power`` is given.
        warmup_power: if set, update ``k`` (k >= 1) uses ``ema_decay_at(k, decay, warmup_power)`` instead of a
            constant decay (Diffusion Policy uses 0.75).
        use_buffers: also average buffers (otherwise they are copied from ``model`` at each update).
        device: where to keep the EMA copy (e.g. ``"cpu"`` to save accelerator memory).
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    if warmup_power is None:
        avg_fn = get_ema_multi_avg_fn(decay)
    else:
        avg_fn = _warmup_multi_avg_fn(decay, warmup_power, 0.0)
    ema = AveragedModel(model, device=device, multi_avg_fn=avg_fn, use_buffers=use_buffers)
    ema.module.eval()
    ema.module.requires_grad_(False)
    return ema


@torch.no_grad()
def copy_ema_to(ema: AveragedModel, model: nn.Module) -> nn.Module:
    """Load the EMA weights (and buffers) into ``model`` in place, e.g. before saving or sampling."""
    model.load_state_dict(ema.module.state_dict())
    return model
