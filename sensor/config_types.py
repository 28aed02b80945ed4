"""The sensor's configuration records: frozen dataclasses with Suricata's defaults.

Scope: the typed result of sensor/config.py's loader, imported by every stage that reads
a setting. No parsing here (sensor/config.py parses, layers and validates).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class StreamConfig:
    midstream: bool = False
    async_oneside: bool = False
    reassembly_depth: int = 1048576  # bytes per direction; 0 = unlimited
    reassembly_memcap: int = 268435456
    max_ooo_bytes: int = 262144  # bytes held out of order per direction
    max_ooo_segments: int = 1024
    memcap: int = 67108864
    inline: str = "auto"  # stream.inline: auto (= on in prevent mode), yes, no


@dataclass(frozen=True)
class FlowTimeouts:
    new: int
    established: int
    closed: int


# Suricata's stock flow-timeouts (suricata.yaml defaults), in seconds.
DEFAULT_TIMEOUTS: Mapping[str, FlowTimeouts] = MappingProxyType(
    {
        "default": FlowTimeouts(30, 300, 0),
        "tcp": FlowTimeouts(60, 600, 60),
        "udp": FlowTimeouts(30, 300, 0),
        "icmp": FlowTimeouts(30, 300, 0),
    }
)


@dataclass(frozen=True)
class FlowConfig:
    memcap: int = 134217728
    max_flows: int = 262144
    hash_size: int = 65536  # accepted for Suricata compatibility; informational
    timeouts: Mapping[str, FlowTimeouts] = field(default_factory=lambda: DEFAULT_TIMEOUTS)


# Suricata's stock vars (suricata.yaml defaults).
_HOME = "$HOME_NET"
DEFAULT_ADDRESS_GROUPS: Mapping[str, str] = MappingProxyType(
    {"HOME_NET": "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]", "EXTERNAL_NET": "!$HOME_NET"}
    | dict.fromkeys(["HTTP_SERVERS", "SMTP_SERVERS", "SQL_SERVERS", "DNS_SERVERS"], _HOME)
    | {"TELNET_SERVERS": _HOME, "AIM_SERVERS": "$EXTERNAL_NET", "DC_SERVERS": _HOME}
    | dict.fromkeys(["DNP3_SERVER", "DNP3_CLIENT", "MODBUS_CLIENT", "MODBUS_SERVER"], _HOME)
    | dict.fromkeys(["ENIP_CLIENT", "ENIP_SERVER"], _HOME)
)
DEFAULT_PORT_GROUPS: Mapping[str, str] = MappingProxyType(
    {"HTTP_PORTS": "80", "SHELLCODE_PORTS": "!80", "ORACLE_PORTS": "1521", "SSH_PORTS": "22"}
    | {"DNP3_PORTS": "20000", "MODBUS_PORTS": "502", "FILE_DATA_PORTS": "[$HTTP_PORTS,110,143]"}
    | {"FTP_PORTS": "21", "GENEVE_PORTS": "6081", "VXLAN_PORTS": "4789", "TEREDO_PORTS": "3544"}
)


@dataclass(frozen=True)
class VarsConfig:
    address_groups: Mapping[str, str] = field(default_factory=lambda: DEFAULT_ADDRESS_GROUPS)
    port_groups: Mapping[str, str] = field(default_factory=lambda: DEFAULT_PORT_GROUPS)


@dataclass(frozen=True)
class CaptureConfig:
    snaplen: int = 65535
    promisc: bool = True
    bpf: str | None = None
    immediate: bool = True
    buffer_size: int | None = None
    rt_priority: int = 0  # SCHED_FIFO priority of a live capture (1-99); 0 = normal scheduling


@dataclass(frozen=True)
class DetectConfig:
    classification_file: str | None = None
    reference_file: str | None = None
    rule_files: tuple[str, ...] = ()
    default_rule_path: str | None = None
    cache_dir: str | None = None  # load_config always fills it (see default_cache_dir)
    strict: bool = False
    packet_alert_max: int = 15  # alerts kept per packet, highest priority first (Suricata's)

    def rule_paths(self) -> tuple[str, ...]:
        """rule_files with relative names resolved against default_rule_path, as Suricata does."""
        if not self.default_rule_path:
            return self.rule_files
        return tuple(os.path.join(self.default_rule_path, f) for f in self.rule_files)


@dataclass(frozen=True)
class DefragConfig:
    trackers: int = 4096  # defrag.trackers: incomplete datagrams held at once
    max_frags: int = 256  # defrag.max-frags: fragments per datagram (sekimori: per datagram)
    timeout: int = 60  # defrag.timeout: seconds an incomplete datagram is kept
    memcap: int = 32 * 1024 * 1024  # defrag.memcap: fragment bytes held at once


@dataclass(frozen=True)
class AppLayerConfig:
    http: bool = True
    dns: bool = True
    tls: bool = True
    # libhtp's default-config limits (Suricata's suricata.yaml values)
    request_body_limit: int = 100 * 1024
    response_body_limit: int = 100 * 1024
    decompress_layer_limit: int = 2


@dataclass(frozen=True)
class OutputConfig:
    eve_file: str | None = None
    redis_url: str | None = None
    redis_stream: str = "sekimori:alerts"
    redis_spool_dir: str | None = None  # outputs.redis.spool-dir (default: under the cache)
    redis_maxlen: int = 100000  # outputs.redis.maxlen: approximate stream trimming (0 = none)
    stats_interval: int = 0  # seconds between EVE stats records; 0 = only at the end
    fast_socket: str | None = None  # respond.fast_socket: datagrams to a responder here


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "text"


@dataclass(frozen=True)
class Config:
    stream: StreamConfig = field(default_factory=StreamConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    vars: VarsConfig = field(default_factory=VarsConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    app_layer: AppLayerConfig = field(default_factory=AppLayerConfig)
    defrag: DefragConfig = field(default_factory=DefragConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    log: LogConfig = field(default_factory=LogConfig)
    sensor_id: str = field(default_factory=socket.gethostname)
    mode: str = "detect"  # sensor.mode: detect | prevent (responders enforce only in prevent)
    behaviour_enabled: bool = False  # behaviour.enabled: scan/brute-force/flood detectors
    policy_file: str | None = None  # policy.file: stages, exceptions, assets (docs/policy.md)
    pidfile: str | None = None  # pid-file: where `sekimori run` writes its pid (reloads)
    path: str | None = field(default=None, compare=False)  # the file this was read from
