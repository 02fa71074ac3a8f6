"""Reading a training run's data before its runner starts, once.

A bad annotation or npz file should fail a ``train`` command before mmengine's runner has written logs into the work
dir. `train_pose` therefore builds the datasets once inside `read_first` (every reader checks what it reads); the
readers that `remembered` wraps keep what they read while the block is open, so the runner's own dataset build in
the same block reads no file twice. Outside the block nothing is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["read_first", "remembered"]

T = TypeVar("T")
_memory: dict[Hashable, Any] = {}
_depth = 0


def remembered(key: Hashable, read: Callable[[], T]) -> T:
    """``read()``, or (inside `read_first`) what it returned for ``key`` the first time."""
    if not _depth:
        return read()
    if key not in _memory:
        _memory[key] = read()
    return _memory[key]


@contextmanager
def read_first() -> Iterator[None]:
    """Within the block, readers wrapped in `remembered` read each file once; everything is dropped at its end."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth:
            _memory.clear()
