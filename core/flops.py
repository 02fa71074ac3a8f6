"""FLOP counting for benchmarks: ``torch.utils.flop_counter`` plus the CPU flash-attention kernels.

``FlopCounterMode`` has formulas for the CUDA scaled-dot-product-attention kernels but not for
``_scaled_dot_product_flash_attention_for_cpu`` (and its backward), which ``F.scaled_dot_product_attention`` runs on
CPU, so attention-heavy models look cheaper than they are. `count_flops` adds those two with torch's own SDPA formulas
(4 S_q S_kv d per head forward; 2.5x that backward, as torch counts it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

__all__ = ["count_flops"]

_aten = torch.ops.aten


def _cpu_flash_forward(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_flash_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


_CPU_ATTENTION = {
    _aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_forward,
    _aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_backward,
}


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations (multiply-add = 2) that ``fn()`` runs, CPU attention included."""
    with FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION) as counter:
        fn()
    return counter.get_total_flops()
