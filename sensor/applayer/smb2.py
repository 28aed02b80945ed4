"""SMB2/3 message decoding for :mod:`sensor.applayer.smb` (MS-SMB2 section 2.2).

Scope: the 64-byte header, compounded messages (``NextCommand``) and the commands behind
files and the SMB keywords: NEGOTIATE (dialect), TREE_CONNECT (share path, pipe shares),
CREATE (name, FileId), READ, WRITE, CLOSE, and IOCTL FSCTL_PIPE_TRANSCEIVE (a DCERPC pipe's
request and answer). Responses are matched to requests by MessageId,
so pipelined requests work. Offsets in a message are relative to its header, as MS-SMB2 says.

Related compounded messages (CREATE + WRITE + CLOSE in one record) name the CREATE's file by
an all-ones FileId: that pseudo FileId carries the CREATE's name, so the file is tracked
under it from WRITE to CLOSE.

Non-goals: SESSION_SETUP/authentication, other IOCTLs, QUERY_INFO, change notify, oplock breaks,
SMB3 transforms.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from sensor.applayer.smb import utf16_name

if TYPE_CHECKING:
    from sensor.applayer.smb import SmbParser

# ProtocolId, StructureSize, CreditCharge, Status, Command, Credit, Flags, NextCommand,
# MessageId, Reserved (async: AsyncId low), TreeId (async: AsyncId high), SessionId, Signature
HEADER = struct.Struct("<4sHHIHHIIQIIQ16s")
_FLAG_RESPONSE = 0x00000001
# The FileId a related message uses for "the file the previous CREATE opened"
RELATED_FILE_ID = b"\xff" * 16
_STATUS_PENDING = 0x00000103
_STATUS_BUFFER_OVERFLOW = 0x80000005  # a READ that returns data anyway

NEGOTIATE, TREE_CONNECT, CREATE, CLOSE, READ, WRITE, IOCTL = 0x0, 0x3, 0x5, 0x6, 0x8, 0x9, 0xB

NEGOTIATE_RESP = struct.Struct("<HHH")  # StructureSize, SecurityMode, DialectRevision
TREE_REQ = struct.Struct("<HHHH")  # StructureSize, Flags, PathOffset, PathLength
TREE_RESP = struct.Struct("<HBB")  # StructureSize, ShareType, Reserved
_SHARE_TYPE_PIPE = 0x02
# StructureSize, SecurityFlags, OplockLevel, ImpersonationLevel, SmbCreateFlags, Reserved,
# DesiredAccess, FileAttributes, ShareAccess, CreateDisposition, CreateOptions, NameOffset,
# NameLength, CreateContextsOffset, CreateContextsLength
CREATE_REQ = struct.Struct("<HBBIQQIIIIIHHII")
# StructureSize, OplockLevel, Flags, CreateAction, 4 times, AllocationSize, EndofFile,
# FileAttributes, Reserved2, FileId
CREATE_RESP = struct.Struct("<HBBIQQQQQQII16s")
CLOSE_REQ = struct.Struct("<HHI16s")  # StructureSize, Flags, Reserved, FileId
# StructureSize, Padding, Flags, Length, Offset, FileId
READ_REQ = struct.Struct("<HBBIQ16s")
READ_RESP = struct.Struct("<HBBII")  # StructureSize, DataOffset, Reserved, DataLength, Remaining
# StructureSize, DataOffset, Length, Offset, FileId
WRITE_REQ = struct.Struct("<HHIQ16s")

# StructureSize, Reserved, CtlCode, FileId, InputOffset, InputCount (request and response)
IOCTL_HEAD = struct.Struct("<HHI16sII")
IOCTL_RESP_OUT = struct.Struct("<II")  # OutputOffset, OutputCount (after IOCTL_HEAD)
FSCTL_PIPE_TRANSCEIVE = 0x0011C017

_MAX_CHAIN = 32  # compounded messages decoded per record


def parse_record(p: SmbParser, to_server: bool, record: bytes) -> None:
    """Every message of a (possibly compounded) SMB2 record."""
    start = 0
    for _ in range(_MAX_CHAIN):
        if len(record) - start < HEADER.size:
            p.malformed()
            return
        hdr = HEADER.unpack_from(record, start)
        nxt = hdr[7]
        end = start + nxt if nxt else len(record)
        if end > len(record) or (nxt and nxt < HEADER.size):
            p.malformed()
            return
        _message(p, to_server, record[start:end], hdr)
        if not nxt:
            return
        start = end


def _message(p: SmbParser, to_server: bool, msg: bytes, hdr: tuple[object, ...]) -> None:
    # a truncated record (too long to hold) lacks data, not headers: declared lengths count
    # the bytes it lacks
    status, command, flags, mid = hdr[3], hdr[4], hdr[6], hdr[8]
    assert isinstance(status, int) and isinstance(flags, int)
    response = bool(flags & _FLAG_RESPONSE)
    if response == to_server:  # a response towards the server (or the reverse): not SMB2 as
        p.malformed()  # spoken, ignore the message
        return
    if response and status == _STATUS_PENDING:
        return  # interim response: the final one follows with the same MessageId
    body = HEADER.size
    ok = status == 0
    key = ("smb2", mid)
    if command == NEGOTIATE and response and ok:
        p.dialect = NEGOTIATE_RESP.unpack_from(msg, body)[2]
    elif command == TREE_CONNECT:
        if response:
            share_type = TREE_RESP.unpack_from(msg, body)[1] if ok else 0
            p.tree_response(key, ok, share_type == _SHARE_TYPE_PIPE, ("smb2", hdr[10]))
        else:
            _size, _fl, off, length = TREE_REQ.unpack_from(msg, body)
            p.tree_request(key, utf16_name(msg[off : off + length]))
    elif command == CREATE:
        if response:
            fid = CREATE_RESP.unpack_from(msg, body)[-1] if ok else b""
            p.create_response(key, ok, fid)
        else:
            fields = CREATE_REQ.unpack_from(msg, body)
            off, length = fields[11], fields[12]
            name = utf16_name(msg[off : off + length])
            p.create_request(key, name, ("smb2", hdr[10]))
            # related WRITE/READ/CLOSE messages after it name this file by RELATED_FILE_ID
            p.name_file(RELATED_FILE_ID, name)
    elif command == WRITE and not response:
        _size, off, length, offset, fid = WRITE_REQ.unpack_from(msg, body)
        p.file_data(fid, True, offset, msg[off : off + length], length)
    elif command == READ:
        if not response:
            _size, _pad, _fl, _length, offset, fid = READ_REQ.unpack_from(msg, body)
            p.read_request(key, fid, offset)
        else:
            ok = ok or status == _STATUS_BUFFER_OVERFLOW
            _size, off, _r, length, _rem = READ_RESP.unpack_from(msg, body) if ok else (0,) * 5
            p.read_response(key, ok, msg[off : off + length], length)
    elif command == IOCTL and (ok or not response):
        _size, _r, code, fid, in_off, in_len = IOCTL_HEAD.unpack_from(msg, body)
        if code != FSCTL_PIPE_TRANSCEIVE:
            return
        if response:  # the pipe's answer is the output buffer
            out_off, out_len = IOCTL_RESP_OUT.unpack_from(msg, body + IOCTL_HEAD.size)
            p.pipe_data(fid, False, msg[out_off : out_off + out_len])
        else:
            p.pipe_data(fid, True, msg[in_off : in_off + in_len])
    elif command == CLOSE and not response:
        p.close(CLOSE_REQ.unpack_from(msg, body)[3])
