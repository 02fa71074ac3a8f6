"""CPU thread defaults that hold up when other processes keep the cores busy.

By default GNU OpenMP (libgomp, which torch's CPU wheels use) lets a thread that reaches a barrier spin for a
while before it sleeps. On a laptop whose cores are shared with other work, the scheduler parks one of torch's
threads behind another process and the others spin at every barrier until it runs again: measured here, a small
model trained 5-10x slower beside one busy process (benchmarks/cpu_contention.py). A passive wait policy puts
waiting threads to sleep at once, so a busy neighbour costs a fair share of the CPU, not a multiple.

The policy must be in the environment before libgomp is loaded (before ``import torch``), so
``diffusekit.core`` sets it on import unless the user chose one; a program that imported torch first keeps
libgomp's default. ``--threads`` and ``OMP_NUM_THREADS`` set the thread count, as usual.
"""

from __future__ import annotations

import os

WAIT_POLICY = "PASSIVE"


def set_wait_policy() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets a policy (or a spin count) already."""
    if "GOMP_SPINCOUNT" not in os.environ:
        os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)


def apply_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)`` when given; otherwise torch's default (OMP_NUM_THREADS, else one per
    physical core) stays."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))
