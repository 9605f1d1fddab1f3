"""The wire format of ``vfp serve``: msgpack with numpy arrays, as openpi's ``openpi-client`` writes it.

An array travels as the msgpack map ``{b"__ndarray__": True, b"data": bytes, b"dtype": dtype.str,
b"shape": [...]}`` and a numpy scalar as ``{b"__npgeneric__": True, b"data": item, b"dtype": dtype.str}``.
Only boolean, integer and floating dtypes are accepted in either direction; nothing is ever unpickled.
This module imports numpy and msgpack only (no torch), so clients stay light.
"""

from __future__ import annotations

from typing import Any, Final

import msgpack
import numpy as np

__all__ = ["ALLOWED_DTYPE_KINDS", "WireError", "packb", "unpackb"]

ALLOWED_DTYPE_KINDS: Final = frozenset("biuf")
"""numpy dtype kinds that may travel: bool, signed and unsigned integers, floats."""


class WireError(ValueError):
    """A frame that is not valid msgpack-numpy (the message says what is wrong)."""


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray | np.generic):
        if obj.dtype.kind not in ALLOWED_DTYPE_KINDS:
            raise WireError(f"cannot send an array of dtype {obj.dtype} (only bool, int, uint and float travel)")
        if isinstance(obj, np.ndarray):
            data = np.ascontiguousarray(obj)
            return {b"__ndarray__": True, b"data": data.tobytes(), b"dtype": data.dtype.str, b"shape": list(data.shape)}
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot pack an object of type {type(obj).__name__}")


def _dtype(value: Any) -> np.dtype[Any]:
    name = value.decode() if isinstance(value, bytes) else value
    try:
        dtype = np.dtype(name) if isinstance(name, str) else None
    except TypeError:
        dtype = None
    if dtype is None:
        raise WireError(f"an array's dtype {value!r} is not a numpy dtype string such as '<f4'")
    if dtype.kind not in ALLOWED_DTYPE_KINDS:
        raise WireError(f"arrays of dtype {dtype} are refused (only bool, int, uint and float)")
    return dtype


def _decode(obj: dict[Any, Any]) -> Any:
    if b"__ndarray__" in obj:
        dtype = _dtype(obj.get(b"dtype"))
        shape, data = obj.get(b"shape"), obj.get(b"data")
        if not isinstance(shape, list | tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise WireError(f"an array's shape must be a list of non-negative integers, got {shape!r}")
        if not isinstance(data, bytes):
            raise WireError("an array's data must be bytes")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize if shape else dtype.itemsize
        if len(data) != expected:
            raise WireError(
                f"an array of shape {tuple(shape)} and dtype {dtype} needs {expected} bytes, the frame has {len(data)}"
            )
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if b"__npgeneric__" in obj:
        return _dtype(obj.get(b"dtype")).type(obj.get(b"data"))
    return obj


def packb(obj: Any) -> bytes:
    """Encode a (nested) dict of arrays, numbers and strings as msgpack-numpy bytes."""
    packed: bytes = msgpack.packb(obj, default=_encode)
    return packed


def unpackb(data: bytes) -> Any:
    """Decode msgpack-numpy bytes; arrays come back read-only (they view the frame)."""
    try:
        return msgpack.unpackb(data, object_hook=_decode, strict_map_key=False)
    except WireError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise WireError(f"the frame is not valid msgpack ({type(exc).__name__}: {exc})") from None
