"""The files of a ``multipart/form-data`` request body, as Suricata 7 tracks them.

Scope: Suricata's HTTP/1 request ``file.data`` is not the raw body of a multipart upload but
each part that names a ``filename`` in its ``Content-Disposition`` (form fields without one
are no files): this module finds the boundary in ``Content-Type`` and cuts those parts' data
out of the (possibly still incomplete) body.

Non-goals: per-part Content-Transfer-Encoding (Suricata does not decode it either), nested
multiparts, file names (``file.name`` of uploads).
"""

from __future__ import annotations

import re

_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"]*)"|([^\s;,]+))', re.IGNORECASE)
_FILENAME = re.compile(rb"filename\*?\s*=", re.IGNORECASE)


def multipart_boundary(content_type: bytes | None) -> bytes | None:
    """The boundary of a ``multipart/form-data`` Content-Type, else None."""
    if content_type is None or not content_type.lower().lstrip().startswith(b"multipart/"):
        return None
    m = _BOUNDARY.search(content_type)
    if m is None:
        return None
    boundary = m.group(1) if m.group(1) is not None else m.group(2)
    return boundary or None


def multipart_files(body: bytes, boundary: bytes) -> list[bytes]:
    """The data of every part with a file name, in order (the last one as far as received)."""
    delim = b"--" + boundary
    files: list[bytes] = []
    pos = body.find(delim)
    while pos != -1:
        start = pos + len(delim)
        if body[start : start + 2] == b"--":  # the closing delimiter
            break
        head_end = body.find(b"\r\n\r\n", start)
        if head_end == -1:
            break
        headers = body[start:head_end]
        data_start = head_end + 4
        nxt = body.find(b"\r\n" + delim, data_start)
        end = len(body) if nxt == -1 else nxt
        if _is_file(headers):
            files.append(body[data_start:end])
        pos = -1 if nxt == -1 else nxt + 2
    return files


def _is_file(headers: bytes) -> bool:
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-disposition" and _FILENAME.search(value):
            return True
    return False
