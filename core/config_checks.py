"""Config blocks that mmengine's registries do not check: every key must be known.

mmengine builds ``type=`` entries through registries, which reject unknown arguments; blocks that a domain reads
itself (``evaluate``, ``detect``, ``inference``, keyword arguments for a model's forward) would otherwise drop a
misspelt key silently. :func:`config_block` and :func:`check_kwargs` raise a ``DataError`` that names the key, the
config file and the closest valid key.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import DataError


def _unknown(key: str, valid: Iterable[str], where: str, path: str | Path | None) -> DataError:
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(valid) or 'none'}"
    return DataError(f"unknown key {key!r} in {where}{hint}", path)


def config_block(
    cfg: Mapping[str, Any], name: str, defaults: Mapping[str, Any], *, required: Iterable[str] = ()
) -> dict[str, Any]:
    """``cfg[name]`` merged over ``defaults``; a key that ``defaults`` does not list, or a missing ``required``
    key, is a DataError naming the config file (``cfg.filename`` when ``cfg`` is an mmengine Config)."""
    block = cfg.get(name) or {}
    path = getattr(cfg, "filename", None)
    if not isinstance(block, Mapping):
        raise DataError(f"config block {name!r} must be a dict, got {type(block).__name__}", path)
    for key in block:
        if key not in defaults:
            raise _unknown(str(key), defaults, f"the {name!r} block", path)
    merged = {**defaults, **block}
    for key in required:
        if merged.get(key) is None:
            raise DataError(f"the {name!r} block needs {key!r}", path)
    return merged


def check_kwargs(fn: Callable, kwargs: Mapping[str, Any], where: str, path: str | Path | None = None) -> None:
    """DataError when ``fn`` (e.g. a model's ``forward``) accepts no keyword of that name (and has no ``**kwargs``)."""
    parameters = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    names = [n for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in kwargs:
        if key not in names:
            raise _unknown(str(key), names, where, path)


_UNEXPECTED = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")
_UNREGISTERED = re.compile(r"(\S+) is not in the (\S+) registry")


def _registered_class(name: str):
    """The class registered as ``name`` in one of mmengine's root registries, if any."""
    from mmengine import registry

    for value in vars(registry).values():
        if isinstance(value, registry.Registry) and value.get(name) is not None:
            return value.get(name)
    return None


def build_error(error: Exception, path: str | Path | None) -> DataError | None:
    """A DataError for what an mmengine registry build raises on a bad config (an unknown keyword for a registered
    class, an unregistered ``type``), naming the key, the config file and the closest valid key; None for any
    other error (a bug, which must stay a traceback)."""
    message = str(error.args[0]) if error.args else ""
    match = _UNEXPECTED.search(message) if isinstance(error, TypeError) else None
    if match:
        cls = _registered_class(match.group(1))
        names = list(inspect.signature(cls).parameters) if cls is not None else []
        return _unknown(match.group(2), names, f"the arguments of {match.group(1)}", path)
    match = _UNREGISTERED.search(message) if isinstance(error, KeyError) else None
    if match:
        return DataError(f"type {match.group(1)!r} is not registered ({match.group(2)}); check its spelling", path)
    return None


@contextlib.contextmanager
def registry_errors(path: str | Path | None):
    """Turn the registry build errors of a bad config (see :func:`build_error`) into DataErrors inside the block."""
    try:
        yield
    except (TypeError, KeyError) as error:
        translated = build_error(error, path)
        if translated is None:
            raise
        raise translated from error
