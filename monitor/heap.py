"""Give freed heap memory back to the operating system (glibc ``malloc_trim``).

Once a day the consumer frees the previous days' intraday curves: thousands of arrays of tens of
kilobytes each. glibc keeps freed chunks inside its heap, so without a trim the process's RSS stays
at its high-water mark and creeps up a little every day as the next day's arrays grow into a
fragmented heap. A trim after such a release costs milliseconds. Elsewhere (musl, macOS) it does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("fundflow.heap")
_trim = None
try:  # glibc only: the symbol is absent elsewhere
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _trim = _libc.malloc_trim
    _trim.argtypes = [ctypes.c_size_t]
    _trim.restype = ctypes.c_int
except (OSError, AttributeError):
    _trim = None


def release() -> bool:
    """Return free heap pages to the OS; True when the C library did so."""
    if _trim is None:
        return False
    return bool(_trim(0))
