"""Records shared by every application-layer parser: settings, the transaction, progress.

Scope: :class:`AppLayerSettings` (the bounds every parser obeys, with Suricata 7 / libhtp
defaults), :class:`Transaction` (the per-message view the detection engine inspects) and the
progress constants that tell detection which buffers are final.

Non-goals: no parsing here and no knowledge of rules. A transaction is a mutable slotted object
because parsers fill it incrementally as stream data arrives; it is not a record that leaves the
sensor (EVE dictionaries are built from it on demand by ``AppLayer.eve_fields``).
"""

from __future__ import annotations

from dataclasses import dataclass

Buffer = bytes | list[bytes]


class LittleEndianData(bytes):
    """Buffer bytes whose integers are little-endian (a DCERPC stub whose PDU said so): the
    ``dce`` option of byte_test/byte_jump/byte_extract reads them little-endian, any other
    buffer big-endian, as Suricata's ``DETECT_CI_FLAGS_DCE_LE`` inspection flag does."""

    __slots__ = ()


# Progress per direction. Detection may treat a buffer as final once the direction's progress
# has passed the stage that fills it (Suricata's "progress" of a transaction).
PROGRESS_NONE = 0  # nothing seen yet in this direction
PROGRESS_LINE = 1  # request/response line parsed (method, uri, status ...)
PROGRESS_HEADERS = 2  # header block complete (header buffers final)
PROGRESS_BODY = 3  # body being received (body buffers grow)
PROGRESS_COMPLETE = 4  # message complete: every buffer of this direction is final

# Buffers Suricata fills in both directions; their to-client version lives in
# ``Transaction.buffers_tc`` while ``Transaction.buffers`` holds the to-server one.
DUAL_DIRECTION_BUFFERS = frozenset(
    {
        "http.header",
        "http.header.raw",
        "http.cookie",
        "http.content_type",
        "http.content_len",
        "http.start",
        "http.header_names",
        "http.connection",
        "http.protocol",
        "file.data",
        "http2.header_name",
        "http2.header",
        # TLS certificates: the server's (to client) and, with client auth, the client's
        "tls.cert_subject",
        "tls.cert_issuer",
        "tls.cert_serial",
        "tls.cert_fingerprint",
        "tls.certs",
        "tls.subjectaltname",
        # SSH banners: the client's (to server) and the server's (to client)
        "ssh.proto",
        "ssh.software",
        # the hello's random: the client's to server, the server's to client
        "tls.random",
        "tls.random_time",
        "tls.random_bytes",
        # SIP: the request's version to server, the response's to client
        "sip.protocol",
        # DCERPC stub: the request's to server, the response's to client
        "dce.stub_data",
    }
)


@dataclass(frozen=True)
class AppLayerSettings:
    """Which parsers run and how far they look. Defaults are Suricata 7's stock values.

    * ``request_body_limit`` / ``response_body_limit``: libhtp ``request-body-limit`` and
      ``response-body-limit`` (100 KiB each in suricata.yaml): body bytes kept for inspection.
    * ``field_limit``: libhtp's hard field limit (18000 bytes): a request/response line or
      header longer than this is an anomaly (``http.request_field_too_long``) and ends parsing.
    * ``decompress``: gunzip/inflate response bodies (libhtp does by default).
    * ``decompression_limit``: bound on decompressed bytes kept per body (libhtp's
      ``compression-bomb-limit`` default is 1 MiB; we never keep more than the body limit anyway).
    * ``decompress_layer_limit``: stacked content-codings undone (libhtp
      ``response-body-decompress-layer-limit``, default 2); more is
      ``http.too_many_encoding_layers``.
    * ``max_headers``: header count bound (libhtp ``max-headers`` default in 7 is 1024? we use
      1024) - more is ``http.request_too_many_headers``.
    * ``dns_max_names``: queries/answers kept per DNS message.
    * ``tls_max_record``: largest handshake message buffered (certificate chains fit in 64 KiB).
    * ``detect_max_bytes``: bytes per direction protocol detection inspects before giving up.
    * ``ssh_hassh``: compute HASSH from the KEXINITs (``app-layer.protocols.ssh.hassh``; off
      by default, switched on by the detection engine when a rule uses an ``ssh.hassh*``
      buffer, as Suricata does).
    * ``smb_max_record``: an SMB record (NetBIOS session message) longer than this is not
      held whole: its first 64 KiB are parsed (headers and the start of the data) and the
      rest skipped, still counted in the file's size.
    * ``smb_file_limit``: bytes of one SMB file kept for ``file.data`` and ``file.magic``.
    * ``dcerpc_max_stub``: bytes of one DCERPC call's reassembled stub kept for
      ``dce.stub_data`` (over TCP and SMB named pipes).
    * ``mqtt_max_msg_len``: an MQTT packet longer than this is not buffered (its header is
      kept, its body skipped), as Suricata's ``app-layer.protocols.mqtt.max-msg-length``.
    * ``inline``: parse a direction's TCP data when it arrives instead of when the peer
      acknowledges it (``stream.inline``; Suricata's IDS mode waits for the ACK, its inline
      mode does not). On in prevent mode, so a transaction rule fires on the segment that
      completes the request and a TCP reset can still win the race.
    """

    http: bool = True
    dns: bool = True
    tls: bool = True
    ssh: bool = True
    ftp: bool = True
    smb: bool = True
    snmp: bool = True
    sip: bool = True
    krb5: bool = True
    request_body_limit: int = 100 * 1024
    response_body_limit: int = 100 * 1024
    field_limit: int = 18000
    decompress: bool = True
    decompression_limit: int = 1024 * 1024
    decompress_layer_limit: int = 2
    max_headers: int = 1024
    dns_max_names: int = 64
    tls_max_record: int = 64 * 1024
    detect_max_bytes: int = 2048
    max_transactions: int = 1024
    ssh_hassh: bool = False
    inline: bool = False  # parse TCP data on arrival, as Suricata's inline (IPS) mode does
    smb_max_record: int = 1024 * 1024 + 4096  # NetBIOS record held whole (larger: head only)
    smb_file_limit: int = 1024 * 1024  # bytes of one SMB file kept for file.data / magic
    dcerpc: bool = True
    dcerpc_max_stub: int = 1024 * 1024  # bytes of one call's (reassembled) stub kept
    mqtt: bool = True
    modbus: bool = True
    mqtt_max_msg_len: int = 1024 * 1024  # Suricata's max-msg-length: longer packets skipped


class Transaction:
    """One request/response pair (HTTP), query/answer (DNS), handshake (TLS, SSH) or command
    (FTP).

    ``buffers`` maps Suricata 7 sticky-buffer names to content: the to-server version of a
    buffer Suricata fills in both directions (see ``DUAL_DIRECTION_BUFFERS``) and every
    single-direction buffer. ``buffers_tc`` holds the to-client version of every buffer filled
    from the server side. Use :meth:`get` when the direction matters.
    """

    __slots__ = (
        "buffers",
        "buffers_tc",
        "events",
        "one_way",
        "progress_tc",
        "progress_ts",
        "proto",
        "state",
        "to_client_done",
        "to_server_done",
        "tx_id",
        "values",
    )

    def __init__(self, tx_id: int, proto: str) -> None:
        self.tx_id = tx_id
        self.proto = proto
        self.buffers: dict[str, Buffer] = {}
        self.buffers_tc: dict[str, Buffer] = {}
        self.values: dict[str, int] = {}
        self.events: list[str] = []
        self.progress_ts = PROGRESS_NONE
        self.progress_tc = PROGRESS_NONE
        self.to_server_done = False
        self.to_client_done = False
        self.state: object = None  # parser-private extra data (e.g. the DNS/TLS details for EVE)
        # a one-message transaction's direction (True: to server): Suricata skips inspecting
        # it on the other direction's packets; None: both directions (request + response)
        self.one_way: bool | None = None

    def get(self, name: str, to_server: bool) -> Buffer | None:
        """The buffer ``name`` as seen in one direction (``None`` when not (yet) present)."""
        if to_server:
            if name in DUAL_DIRECTION_BUFFERS:
                return self.buffers.get(name)
            value = self.buffers.get(name)
            return value if name not in self.buffers_tc else None
        return self.buffers_tc.get(name)

    def set_buffer(self, name: str, value: Buffer, to_server: bool) -> None:
        """Store a buffer for one direction, keeping ``buffers`` as the documented union."""
        if to_server:
            self.buffers[name] = value
        else:
            self.buffers_tc[name] = value
            if name not in DUAL_DIRECTION_BUFFERS:
                self.buffers[name] = value

    def complete(self) -> None:
        """Both directions done at once: a protocol whose every message is one transaction."""
        self.progress_ts = self.progress_tc = PROGRESS_COMPLETE
        self.to_server_done = self.to_client_done = True

    def progress(self, to_server: bool) -> int:
        return self.progress_ts if to_server else self.progress_tc

    def __repr__(self) -> str:  # debugging aid only
        return (
            f"Transaction({self.proto} #{self.tx_id} ts={self.progress_ts} tc={self.progress_tc})"
        )
