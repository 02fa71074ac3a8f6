"""Loading a numpy array from a ``.pkl`` file without unpickling anything else.

OmniAnomaly's ``data_preprocess.py`` and ImDiffusion ship their data as plain pickles of numpy arrays. ``pickle.load``
on such a file runs whatever callable the file names (``os.system`` included), so :func:`load_array_pickle` uses an
:class:`ArrayUnpickler` whose ``find_class`` resolves only the globals a numpy array pickle needs and refuses every
other one with a :class:`DataError` naming the file and the refused global, before anything is called:

- ``numpy.core.multiarray._reconstruct`` (numpy 1.x names) / ``numpy._core.multiarray._reconstruct`` (numpy 2),
  ``numpy.ndarray`` and ``numpy.dtype``: protocols 0-4;
- ``numpy.core.numeric._frombuffer`` / ``numpy._core.numeric._frombuffer``: protocol 5;
- ``_codecs.encode``, limited to latin-1 text: how protocols 0-2 store the array's bytes.

Both numpy spellings resolve to the functions of the numpy that is installed, so pickles written by numpy 1.x and 2.x
load under either. Persistent ids are refused too. The loaded object must then be a real numeric array (bool,
integer or float): an object array, a string array, a list or a dict is a DataError naming the file.
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from diffusekit.core.errors import DataError

__all__ = ["ArrayUnpickler", "load_array_pickle"]


def _numpy_function(submodule: str, name: str) -> Callable[..., Any]:
    """``numpy._core.<submodule>.<name>``, or ``numpy.core...`` on a numpy older than 1.26 (no ``numpy._core``)."""
    try:
        module = importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # pragma: no cover - numpy < 1.26
        module = importlib.import_module(f"numpy.core.{submodule}")
    return getattr(module, name)


_LATIN1 = ("latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "iso_8859_1", "l1")


def _latin1_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode`` as protocols 0-2 use it for bytes (``encode(str, 'latin1')``), and nothing else (no codec
    is looked up by a name the file chooses)."""
    if not isinstance(text, str) or not isinstance(encoding, str) or encoding.lower() not in _LATIN1:
        raise pickle.UnpicklingError(f"_codecs.encode is allowed only for latin-1 text, got encoding {encoding!r}")
    return text.encode("latin-1")


def _allowed_globals() -> dict[tuple[str, str], Callable[[], Any]]:
    """(module, name) -> a zero-argument resolver of the object the name stands for."""
    allowed: dict[tuple[str, str], Callable[[], Any]] = {
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        ("_codecs", "encode"): lambda: _latin1_encode,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = lambda: _numpy_function("multiarray", "_reconstruct")
        allowed[(f"{package}.numeric", "_frombuffer")] = lambda: _numpy_function("numeric", "_frombuffer")
    return allowed


_ALLOWED = _allowed_globals()


class ArrayUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only the globals of a plain numpy array (see the module docstring)."""

    def __init__(self, file: Any, path: str | Path):
        super().__init__(file)
        self.path = Path(path)

    def find_class(self, module: str, name: str) -> Any:
        resolve = _ALLOWED.get((module, name))
        if resolve is None:
            raise DataError(
                f"refused to unpickle the global {module}.{name}: only plain numpy arrays are loaded from .pkl files",
                self.path,
            )
        return resolve()

    def persistent_load(self, pid: Any) -> Any:
        raise DataError("refused to unpickle a persistent id: only plain numpy arrays are loaded", self.path)


def load_array_pickle(path: str | Path, what: str = "a numeric array") -> np.ndarray:
    """The numpy array pickled in ``path`` (see the module docstring); a DataError naming the file when it is
    missing, unreadable, not a pickle, names a global outside the allowed ones, or holds anything but ``what`` (a
    non-empty array of bools, integers or floats)."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path)
    if path.is_dir():
        raise DataError("expected a file, found a folder", path)
    try:
        with path.open("rb") as handle:
            obj = ArrayUnpickler(handle, path).load()
    except DataError:
        raise
    except OSError as err:
        raise DataError(f"cannot read the file: {err.strerror or err}", path) from None
    except Exception as err:  # a truncated, corrupt or foreign file: any failure of the loader is the file's
        raise DataError(f"not a readable pickle of a numpy array ({type(err).__name__}: {err})", path) from None
    if not isinstance(obj, np.ndarray):
        raise DataError(f"holds a {type(obj).__name__}, expected {what}", path)
    if obj.dtype.kind not in "biuf":
        raise DataError(f"holds an array of dtype {obj.dtype}, expected {what} (bools, integers or floats)", path)
    if obj.size == 0:
        raise DataError(f"holds an empty array of shape {obj.shape}, expected {what}", path)
    return obj
