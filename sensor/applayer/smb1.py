"""SMB1 (CIFS) message decoding for :mod:`sensor.applayer.smb` (MS-CIFS section 2.2).

Scope: the 32-byte header, AndX chains, and the commands behind files and the SMB keywords:
TREE_CONNECT_ANDX (share path; service ``IPC`` marks a pipe share), NT_CREATE_ANDX (name,
FID), WRITE_ANDX, READ_ANDX, CLOSE. Responses are matched to requests by (PID, MID).

TRANS with TransactNmPipe carries DCERPC to and from a named pipe.

Non-goals: other TRANS/TRANS2 subcommands (rename, delete, ...), the older WRITE/READ and
OPEN commands, session setup, negotiation details.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from sensor.applayer.smb import utf16_name

if TYPE_CHECKING:
    from sensor.applayer.smb import SmbParser

# Protocol, Command, Status, Flags, Flags2, PIDHigh, SecurityFeatures, Reserved, TID, PIDLow,
# UID, MID
HEADER = struct.Struct("<4sBIBHH8sHHHHH")
_FLAGS_REPLY = 0x80
_FLAGS2_UNICODE = 0x8000

CLOSE, WRITE_ANDX, READ_ANDX, TREE_CONNECT_ANDX, NT_CREATE_ANDX = 0x04, 0x2F, 0x2E, 0x75, 0xA2
TRANS = 0x25
_TRANSACT_NMPIPE = 0x0026  # TRANS subcommand: write to a pipe and read its answer
# request: TotalParameterCount .. Reserved2 (skipped), ParameterCount, ParameterOffset,
# DataCount, DataOffset, SetupCount, Reserved3, Setup[0] (subcommand), Setup[1] (FID)
TRANS_REQ = struct.Struct("<18xHHHHBBHH")
# response: TotalParameterCount, TotalDataCount, Reserved, ParameterCount, ParameterOffset,
# ParameterDisplacement, DataCount, DataOffset
TRANS_RESP = struct.Struct("<HHHHHHHH")
_ANDX = frozenset({0x24, 0x2D, 0x2E, 0x2F, 0x73, 0x74, 0x75, 0xA2})  # commands with AndX
_NO_ANDX = 0xFF
_MAX_CHAIN = 8

ANDX = struct.Struct("<BBH")  # AndXCommand, AndXReserved, AndXOffset (first words)
TREE_REQ = struct.Struct("<HH")  # Flags, PasswordLength (after AndX)
# Reserved, NameLength, Flags, RootDirectoryFID, DesiredAccess, AllocationSize,
# ExtFileAttributes, ShareAccess, CreateDisposition, CreateOptions, Impersonation, Security
CREATE_REQ = struct.Struct("<BHIIIQIIIIIB")
CREATE_RESP = struct.Struct("<BH")  # OplockLevel, FID (after AndX)
# FID, Offset, Timeout, WriteMode, Remaining, DataLengthHigh, DataLength, DataOffset
WRITE_REQ = struct.Struct("<HIIHHHHH")
READ_REQ = struct.Struct("<HI")  # FID, Offset (after AndX); OffsetHigh at word 10 if 12 words
# Available, DataCompactionMode, Reserved, DataLength, DataOffset, DataLengthHigh
READ_RESP = struct.Struct("<HHHHHH")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")


def parse_record(p: SmbParser, to_server: bool, record: bytes) -> None:
    """One SMB1 message and its AndX chain."""
    if len(record) < HEADER.size:
        p.malformed()
        return
    hdr = HEADER.unpack_from(record)
    command, status, flags, flags2 = hdr[1], hdr[2], hdr[3], hdr[4]
    if bool(flags & _FLAGS_REPLY) == to_server:
        p.malformed()
        return
    unicode = bool(flags2 & _FLAGS2_UNICODE)
    key = ("smb1", hdr[9] | hdr[5] << 16, hdr[11])  # (PID, MID)
    tree = ("smb1", hdr[8])  # TID
    pos = HEADER.size
    for _ in range(_MAX_CHAIN):
        wc = record[pos]
        words = pos + 1
        nbytes = _U16.unpack_from(record, words + 2 * wc)[0]
        data = words + 2 * wc + 2  # the byte block, offsets relative to the SMB header
        _command(p, to_server, record, command, status == 0, key, unicode, words, wc, data,
                 nbytes, tree)  # fmt: skip
        if command not in _ANDX or wc < 2:
            return
        command, _res, nxt = ANDX.unpack_from(record, words)
        if command == _NO_ANDX or nxt <= pos:
            return
        pos = nxt


def _string(record: bytes, pos: int, end: int, unicode: bool) -> tuple[bytes, int]:
    """A NUL-terminated string at ``pos`` (UTF-16 aligned to 2 from the header): (the name as
    Suricata keeps it, the position after it)."""
    if unicode:
        pos += pos & 1
        i = pos
        while i + 1 < end and record[i : i + 2] != b"\x00\x00":
            i += 2
        return utf16_name(record[pos:i]), i + 2
    i = record.find(b"\x00", pos, end)
    i = end if i < 0 else i
    return record[pos:i], i + 1


def _command(p: SmbParser, to_server: bool, record: bytes, command: int, ok: bool,
             key: object, unicode: bool, words: int, wc: int, data: int,
             nbytes: int, tree: object) -> None:  # fmt: skip
    end = min(len(record), data + nbytes)
    body = words + ANDX.size  # the words after the AndX block
    if command == TREE_CONNECT_ANDX:
        if to_server:
            _flags, pwlen = TREE_REQ.unpack_from(record, body)
            path, _next = _string(record, data + pwlen, end, unicode)
            p.tree_request(key, path)
        else:
            service = record[data:end].split(b"\x00", 1)[0] if wc else b""
            p.tree_response(key, ok, service == b"IPC", tree)
    elif command == NT_CREATE_ANDX:
        if to_server:
            CREATE_REQ.unpack_from(record, body)
            name, _next = _string(record, data, end, unicode)
            p.create_request(key, name, tree)
        else:
            fid = _U16.pack(CREATE_RESP.unpack_from(record, body)[1]) if ok and wc else b""
            p.create_response(key, ok and wc > 0, fid)
    elif command == WRITE_ANDX and to_server:
        fid, offset, _t, _m, _r, high, low, doff = WRITE_REQ.unpack_from(record, body)
        if wc >= 14:
            offset |= _U32.unpack_from(record, body + WRITE_REQ.size)[0] << 32
        length = high << 16 | low
        p.file_data(_U16.pack(fid), True, offset, record[doff : doff + length], length)
    elif command == READ_ANDX:
        if to_server:
            fid, offset = READ_REQ.unpack_from(record, body)
            if wc >= 12:
                offset |= _U32.unpack_from(record, words + 20)[0] << 32
            p.read_request(key, _U16.pack(fid), offset)
        elif ok and wc >= 12:
            _a, _c, _r, low, doff, high = READ_RESP.unpack_from(record, body)
            length = high << 16 | low
            p.read_response(key, True, record[doff : doff + length], length)
        else:
            p.read_response(key, False, b"", 0)
    elif command == TRANS:
        _trans(p, to_server, record, ok, key, words, wc)
    elif command == CLOSE and to_server and wc >= 1:
        p.close(_U16.pack(_U16.unpack_from(record, words)[0]))


def _trans(p: SmbParser, to_server: bool, record: bytes, ok: bool, key: object, words: int,
           wc: int) -> None:  # fmt: skip
    """TRANS TransactNmPipe: the request's data goes to the pipe, the response's comes back
    from it (matched to the request's FID by PID+MID)."""
    if to_server:
        if wc < 16:
            return
        _pc, _po, dcount, doff, _sc, _r, sub, fid = TRANS_REQ.unpack_from(record, words)
        if sub == _TRANSACT_NMPIPE and p.pipe_data(_U16.pack(fid), True,
                                                   record[doff : doff + dcount]):  # fmt: skip
            p.read_request(key, _U16.pack(fid), 0)
    elif ok and wc >= 10:
        fields = TRANS_RESP.unpack_from(record, words)
        dcount, doff = fields[6], fields[7]
        p.trans_response(key, record[doff : doff + dcount])
