"""count_flops includes the CPU flash-attention kernels, with torch's own SDPA formulas."""

import torch
import torch.nn.functional as F

from diffusekit.core.flops import count_flops


def test_counts_cpu_attention_forward_and_backward():
    n, h, s, d = 2, 3, 10, 8
    q, k, v = (torch.randn(n, h, s, d, requires_grad=True) for _ in range(3))
    forward = 4 * n * h * s * s * d  # QK^T and PV, 2 flops per multiply-add
    assert count_flops(lambda: F.scaled_dot_product_attention(q, k, v)) == forward
    total = count_flops(lambda: F.scaled_dot_product_attention(q, k, v).sum().backward())
    assert total == forward + 5 * forward // 2  # backward: five batched matmuls of the forward's size


def test_counts_linear_layers_as_torch_does():
    layer = torch.nn.Linear(16, 32)
    x = torch.randn(5, 16)
    assert count_flops(lambda: layer(x)) == 2 * 5 * 16 * 32
