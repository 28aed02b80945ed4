"""libmagic through ctypes: the description ``file(1)`` gives of a file's first bytes.

Scope: what Suricata's ``file.magic`` buffer (and the legacy ``filemagic`` keyword) inspects.
Suricata opens libmagic with no flags (``MAGIC_NONE``) and the system's default magic
database, and describes a file once it holds at least ``MAGIC_MIN_BYTES`` bytes or is
complete, using every byte it has buffered from the file's start at that moment
(``FilemagicThreadLookup``); :func:`magic_input` picks the same bytes.

One :class:`LibMagic` (one libmagic cookie, its database loaded once) is opened per detection
engine, i.e. once per process, and only when a rule needs ``file.magic``. libmagic's cookie is
not thread-safe: an instance must not be shared between threads (sekimori's workers are
processes).

Non-goals: ``magic-file`` (a custom database), MIME output, a Python dependency (the system's
``libmagic1`` is used directly).
"""

from __future__ import annotations

import ctypes
import ctypes.util

MAGIC_NONE = 0
MAGIC_MIN_BYTES = 512  # Suricata's FILEMAGIC_MIN_SIZE
_SONAMES = ("libmagic.so.1", "libmagic.dylib")
INSTALL_HINT = "install the system package libmagic1 (make install does it as root)"


class MagicUnavailable(Exception):
    """libmagic cannot be loaded or its database opened; the message says why."""


def _load_library() -> ctypes.CDLL:
    errors = []
    for name in _SONAMES:  # the usual sonames first: find_library runs ldconfig
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            errors.append(str(exc))
    found = ctypes.util.find_library("magic")
    if found:
        try:
            return ctypes.CDLL(found)
        except OSError as exc:
            errors.append(str(exc))
    raise MagicUnavailable(f"libmagic not found ({'; '.join(errors)}): {INSTALL_HINT}")


def libmagic_missing() -> str | None:
    """Why ``file.magic`` cannot be computed in this process, or None when it can (opens and
    closes a cookie: the database is memory-mapped, a few milliseconds)."""
    try:
        LibMagic().close()
    except MagicUnavailable as exc:
        return str(exc)
    except AttributeError:  # a library named libmagic without the file(1) API
        return f"the libmagic found lacks magic_open/magic_load/magic_buffer: {INSTALL_HINT}"
    return None


class LibMagic:
    """One libmagic cookie with the default database loaded."""

    _lib: ctypes.CDLL | None = None  # set once the cookie is open; close() clears it

    def __init__(self) -> None:
        lib = _load_library()
        lib.magic_open.restype = ctypes.c_void_p
        lib.magic_open.argtypes = [ctypes.c_int]
        lib.magic_load.restype = ctypes.c_int
        lib.magic_load.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.magic_buffer.restype = ctypes.c_char_p
        lib.magic_buffer.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        lib.magic_error.restype = ctypes.c_char_p
        lib.magic_error.argtypes = [ctypes.c_void_p]
        lib.magic_close.restype = None
        lib.magic_close.argtypes = [ctypes.c_void_p]
        cookie = lib.magic_open(MAGIC_NONE)
        if not cookie:
            raise MagicUnavailable("magic_open failed")
        if lib.magic_load(cookie, None) != 0:
            err = lib.magic_error(cookie) or b"unknown error"
            lib.magic_close(cookie)
            raise MagicUnavailable(
                f"magic_load failed: {err.decode('utf-8', 'replace')}: {INSTALL_HINT}"
            )
        self._lib = lib
        self._cookie: int = cookie

    def describe(self, data: bytes) -> bytes | None:
        """libmagic's description of ``data`` (e.g. ``b"PDF document, version 1.6"``);
        None for empty data, a closed instance or a libmagic error."""
        lib = self._lib
        if lib is None or not data:
            return None
        # magic_buffer copies nothing back into data; the result is owned by the cookie and
        # overwritten by the next call, hence the copy into Python bytes (c_char_p does it).
        result: bytes | None = lib.magic_buffer(self._cookie, data, len(data))
        return result

    def close(self) -> None:
        if self._lib is not None:
            self._lib.magic_close(self._cookie)
            self._lib = None

    def __enter__(self) -> LibMagic:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def magic_input(body: bytes, complete: bool) -> bytes | None:
    """The bytes Suricata describes: the file's data so far once it has ``MAGIC_MIN_BYTES``
    or is complete; None while it is still too short to decide."""
    if not body:
        return None
    if len(body) >= MAGIC_MIN_BYTES or complete:
        return body
    return None
