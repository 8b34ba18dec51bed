"""Read pickles that should hold only data (MMSA feature files) without running what they name.

``pickle.load`` calls any importable function a file names, so a crafted file runs code on load.
:func:`load_data_pickle` resolves only the handful of globals numpy arrays and scalars are rebuilt
from; builtin containers, numbers, strings and bytes need no globals at all. Any other name is
refused before it is imported or called, with an error that names the file and the global.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from affectfusion.errors import AffectFusionError

# (module, name) pairs a numpy array, dtype or scalar is pickled with (numpy 1 and 2 module paths),
# and _codecs.encode, which protocol-2 pickles use to carry bytes as latin-1 text. Protocol 5 (pandas'
# to_pickle default) rebuilds arrays with numeric._frombuffer, which copies raw bytes into a numeric
# dtype only: numpy refuses object dtypes there, so it cannot build anything that runs code.
ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "complex"),
        ("builtins", "bytearray"),
    }
)


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, where: str) -> None:
        super().__init__(file, encoding="latin1")  # latin1: numpy arrays pickled by Python 2
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise AffectFusionError(
            f"{self.where}: refused to load: the pickle refers to {module}.{name}; only numpy arrays, "
            "builtin containers, numbers and strings are allowed (nothing in it was run)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise AffectFusionError(f"{self.where}: refused to load: the pickle uses persistent ids")


def load_data_pickle(path: Path) -> Any:
    """The object in a data-only pickle file; anything else is an :class:`AffectFusionError`."""
    try:
        with open(path, "rb") as f:
            return _DataUnpickler(f, str(path)).load()
    except AffectFusionError:
        raise
    except FileNotFoundError:
        raise AffectFusionError(f"{path} does not exist") from None
    except Exception as e:  # truncated or corrupt file: a one-line reason, no traceback
        raise AffectFusionError(f"{path} could not be read as a pickle: {type(e).__name__}: {e}") from None
