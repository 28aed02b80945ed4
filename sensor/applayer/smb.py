"""SMB over TCP (port 445 / NetBIOS session service): record framing, transactions, files.

Scope: as much of Suricata 7's SMB parser as its file keywords and the ``smb.share`` /
``smb.named_pipe`` sticky buffers need. Each direction is cut into NetBIOS session records
(4-byte header, 24-bit length); a record holds one SMB1 message (``\\xffSMB``, decoded by
``smb1.py``) or a chain of compounded SMB2/3 messages (``\\xfeSMB``, ``smb2.py``). Those
decoders call the small state API below, which keeps:

* tree connects: one transaction per request with the share path in ``smb.share``; when the
  response says the share is a pipe share (IPC$) the path moves to ``smb.named_pipe``, as
  Suricata's tree-connect transaction decides by ``is_pipe``. Both are to-server buffers.
* files: one transaction per (FileId, direction) as Suricata's file transactions: WRITE
  request data is a to-server file, READ response data a to-client file, both placed at their
  offset; ``file.name`` is the CREATE's name, ``file.data`` the contiguous bytes kept (up to
  ``smb_file_limit``), ``file.size`` appears when CLOSE closes the file (Suricata's filesize
  only decides on closed files).

* named pipes: a file opened on a pipe share (IPC$) is a DCERPC pipe, as Suricata decides
  by the tree's ``is_pipe`` and the pipe's name (``PSEXESVC`` is not DCERPC): its WRITE /
  READ data (and SMB2 IOCTL FSCTL_PIPE_TRANSCEIVE, SMB1 TRANS TransactNmPipe) is handed to
  one ``DcerpcParser`` per pipe, whose call transactions are SMB transactions with the
  ``dce.*`` values and buffers; it is not a file.

Non-goals: SMB3 encryption/compression transforms,
session setup/authentication details, EVE ``smb`` records, file gaps (bytes after a hole are
held back, up to the file limit, until the hole fills; never filled, they are not inspected).
Malformed records are skipped (``smb.malformed_data`` on ``events``), never raised.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from sensor.applayer.common import (
    PROGRESS_BODY,
    PROGRESS_COMPLETE,
    PROGRESS_LINE,
    AppLayerSettings,
    Transaction,
)
from sensor.applayer.dcerpc import DcerpcParser

_NBSS = struct.Struct(">I")  # type (8 bits) + length (24 bits): SMB2 direct TCP's framing
_NBSS_SESSION_MESSAGE = 0x00
# Bytes of an over-long record kept for its headers; the rest is skipped (file data beyond it
# is counted in file.size but not kept).
_RECORD_HEAD = 64 * 1024
_MAX_PENDING = 1024  # requests awaiting their response (pipelined), per map
_MAX_FILES = 64  # file transactions tracked at once per flow
_MAX_HELD = 256  # chunks of one file held after a hole
_MAX_PIPES = 16  # DCERPC pipes tracked at once per flow
_MAX_TREES = 64  # pipe tree ids remembered
_NOT_DCERPC_PIPES = frozenset({b"psexesvc"})  # Suricata: PsExec's pipe carries no DCERPC

FileKey = tuple[bytes, bool]  # (FileId as bytes, to_server)


class SmbFile:
    """One file transfer in one direction: the data in order, bounded, and its tracked size."""

    __slots__ = ("closed", "data", "held", "limit", "size", "to_server", "tx")

    def __init__(self, tx: Transaction, to_server: bool, limit: int) -> None:
        self.tx = tx
        self.to_server = to_server
        self.limit = limit
        self.data = bytearray()  # contiguous bytes from offset 0, at most `limit`
        self.size = 0  # contiguous bytes seen (kept or not): Suricata's tracked size
        self.held: dict[int, bytes] = {}  # chunks beyond a hole, bounded by `limit` bytes
        self.closed = False

    def add(self, offset: int, chunk: bytes, declared: int) -> None:
        """``declared`` bytes were written at ``offset``; ``chunk`` is the part we have."""
        if offset > self.size:  # after a hole: held (bounded) until the hole fills
            held = self.held
            if (offset < self.limit and len(held) < _MAX_HELD
                    and sum(map(len, held.values())) < self.limit):  # fmt: skip
                held[offset] = chunk[: self.limit - offset]
            return
        self._append(offset, chunk, declared)
        while self.size in self.held:  # a hole just filled (iterative: chunks may be many)
            nxt = self.held.pop(self.size)
            self._append(self.size, nxt, len(nxt))

    def _append(self, offset: int, chunk: bytes, declared: int) -> None:
        end = offset + declared
        if end <= self.size:
            return  # a retransmitted or overlapping write: first data wins
        keep = chunk[self.size - offset :]
        if len(self.data) < self.limit and len(self.data) == self.size:
            self.data += keep[: self.limit - len(self.data)]
        self.size = end

    def refresh(self) -> None:
        """Copy the state into the transaction's buffers (on pop_ready, not per chunk)."""
        self.tx.set_buffer("file.data", bytes(self.data), self.to_server)
        if self.closed:
            self.tx.values["file.size"] = self.size


class SmbParser:
    """Both directions of one SMB flow."""

    def __init__(self, cfg: AppLayerSettings, updated: Callable[[Transaction], None]) -> None:
        self.cfg = cfg
        self._updated = updated
        self._buf = {True: bytearray(), False: bytearray()}
        self._skip = {True: 0, False: 0}  # bytes of an over-long record still to drop
        self._next_id = 0
        self.events: list[str] = []
        self.dialect = 0  # negotiated SMB2 dialect (0x0202 ... 0x0311), 0 for SMB1
        self._trees: dict[object, Transaction] = {}  # request key -> tree connect tx
        self._creates: dict[object, tuple[bytes, object]] = {}  # request key -> (name, tree)
        self._reads: dict[object, tuple[bytes, int]] = {}  # request key -> (FileId, offset)
        self._names: dict[bytes, bytes] = {}  # FileId -> name (Suricata's guid2name map)
        self._files: dict[FileKey, SmbFile] = {}
        self._pipe_trees: dict[object, bool] = {}  # tree key -> True (pipe shares only)
        self._pipes: dict[bytes, DcerpcParser] = {}  # FileId -> its DCERPC stream

    # ------------------------------------------------------------------ framing
    def feed(self, to_server: bool, data: bytes) -> None:
        buf = self._buf[to_server]
        skip = self._skip[to_server]
        if skip:
            drop = min(skip, len(data))
            self._skip[to_server] = skip - drop
            data = data[drop:]
        buf += data
        limit = self.cfg.smb_max_record
        while len(buf) >= 4 and not self._skip[to_server]:
            (word,) = _NBSS.unpack_from(buf)
            kind, length = word >> 24, word & 0xFFFFFF
            if length <= limit:
                if len(buf) < 4 + length:
                    break
                record = bytes(buf[4 : 4 + length])
                del buf[: 4 + length]
            elif len(buf) < 4 + _RECORD_HEAD:
                break
            else:  # too long to hold: parse its head only, skip the rest
                record = bytes(buf[4 : 4 + _RECORD_HEAD])
                present = len(buf) - 4
                if present >= length:
                    del buf[: 4 + length]
                else:
                    del buf[:]
                    self._skip[to_server] = length - present
            if kind == _NBSS_SESSION_MESSAGE:  # keep-alives and session requests: no SMB
                self._record(to_server, record)

    def _record(self, to_server: bool, record: bytes) -> None:
        # imported here: the decoders import this module's types
        from sensor.applayer import smb1, smb2

        try:
            if record[:4] == b"\xfeSMB":
                smb2.parse_record(self, to_server, record)
            elif record[:4] == b"\xffSMB":
                smb1.parse_record(self, to_server, record)
            elif record[:4] != b"\xfdSMB":  # SMB3 transform (encrypted): nothing to see
                self.malformed()
        except (struct.error, IndexError, ValueError):
            self.malformed()

    def malformed(self) -> None:
        if len(self.events) < 16:
            self.events.append("smb.malformed_data")

    # ------------------------------------------------------------------ state API
    def _new_tx(self) -> Transaction:
        tx = Transaction(self._next_id, "smb")
        self._next_id += 1
        return tx

    @staticmethod
    def _remember(table: dict[object, object], key: object, value: object) -> None:
        if len(table) >= _MAX_PENDING:
            table.pop(next(iter(table)))  # responses never came: forget the oldest
        table[key] = value

    def tree_request(self, key: object, share: bytes) -> None:
        if len(share) > 1:  # Suricata drops the first byte: \\srv\share is \srv\share
            share = share[1:]
        tx = self._new_tx()
        tx.set_buffer("smb.share", share, True)
        tx.progress_ts = PROGRESS_COMPLETE
        tx.to_server_done = True
        self._remember(self._trees, key, tx)  # type: ignore[arg-type]
        self._updated(tx)

    def tree_response(self, key: object, ok: bool, is_pipe: bool, tree: object = None) -> None:
        if ok and is_pipe and tree is not None:
            self._remember(self._pipe_trees, tree, True)  # type: ignore[arg-type]
        tx = self._trees.pop(key, None)
        if tx is None:
            return
        if ok and is_pipe:  # Suricata: a pipe share's path is smb.named_pipe, not smb.share
            tx.buffers["smb.named_pipe"] = tx.buffers.pop("smb.share")
        tx.progress_tc = PROGRESS_COMPLETE
        tx.to_client_done = True
        self._updated(tx)

    def create_request(self, key: object, name: bytes, tree: object = None) -> None:
        self._remember(self._creates, key, (name, tree))  # type: ignore[arg-type]

    def create_response(self, key: object, ok: bool, fid: bytes) -> None:
        pending = self._creates.pop(key, None)
        if pending is None or not ok:
            return
        name, tree = pending
        self._remember(self._names, fid, name)  # type: ignore[arg-type]
        pipe = name.lstrip(b"\\").lower()
        if tree in self._pipe_trees and pipe not in _NOT_DCERPC_PIPES and self.cfg.dcerpc:
            if len(self._pipes) >= _MAX_PIPES:
                self._pipes.pop(next(iter(self._pipes)))
            self._pipes[fid] = DcerpcParser("smb", self._new_tx, self._updated,
                                            self.cfg.dcerpc_max_stub, match_ctxid=False)  # fmt: skip

    def trans_response(self, key: object, data: bytes) -> None:
        """A TRANS response: the pipe's answer to the request with the same PID+MID."""
        pending = self._reads.pop(key, None)
        if pending is not None:
            self.pipe_data(pending[0], False, data)

    def pipe_data(self, fid: bytes, to_server: bool, data: bytes) -> bool:
        """Bytes written to (read from) a DCERPC pipe; False when ``fid`` is not one."""
        pipe = self._pipes.get(fid)
        if pipe is None:
            return False
        pipe.feed(to_server, data)
        return True

    def name_file(self, fid: bytes, name: bytes) -> None:
        self._remember(self._names, fid, name)  # type: ignore[arg-type]

    def read_request(self, key: object, fid: bytes, offset: int) -> None:
        self._remember(self._reads, key, (fid, offset))  # type: ignore[arg-type]

    def read_response(self, key: object, ok: bool, chunk: bytes, declared: int) -> None:
        pending = self._reads.pop(key, None)
        if pending is not None and ok and declared:
            self.file_data(pending[0], False, pending[1], chunk, declared)

    def file_data(self, fid: bytes, to_server: bool, offset: int, chunk: bytes,
                  declared: int) -> None:  # fmt: skip
        """WRITE (to server) or READ response (to client) data for FileId ``fid``."""
        if self.pipe_data(fid, to_server, chunk):
            return
        f = self._files.get((fid, to_server))
        if f is None or f.closed:
            if len(self._files) >= _MAX_FILES:
                self._files.pop(next(iter(self._files)))
            tx = self._new_tx()
            tx.state = f = SmbFile(tx, to_server, self.cfg.smb_file_limit)
            tx.set_buffer("file.name", self._names.get(fid, b""), to_server)
            if to_server:
                tx.progress_ts = PROGRESS_BODY
            else:
                tx.progress_tc = PROGRESS_BODY
            self._files[(fid, to_server)] = f
        f.add(offset, chunk, declared)
        self._updated(f.tx)

    def close(self, fid: bytes) -> None:
        """CLOSE request: the FileId's files are complete in both directions (Suricata closes
        the file transactions when it parses the request)."""
        for to_server in (True, False):
            f = self._files.pop((fid, to_server), None)
            if f is None:
                continue
            f.closed = True
            tx = f.tx
            if to_server:
                tx.progress_ts, tx.to_server_done = PROGRESS_COMPLETE, True
            else:
                tx.progress_tc, tx.to_client_done = PROGRESS_COMPLETE, True
            self._updated(tx)
        self._names.pop(fid, None)
        self._pipes.pop(fid, None)


def utf16_name(raw: bytes) -> bytes:
    """A UTF-16LE name as Suricata keeps it: NUL bytes dropped (ASCII names read as ASCII)."""
    return raw.replace(b"\x00", b"")


__all__ = ["PROGRESS_LINE", "SmbFile", "SmbParser", "utf16_name"]
