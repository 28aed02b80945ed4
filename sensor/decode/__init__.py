"""Packet decoding: link, IP (with reassembly) and transport headers into a Packet.

``Decoder(config).decode(pkt)`` fills ``pkt`` in place; see docs/decode.md for the
supported protocols, the anomaly events and the limits.
"""

from sensor.decode.decoder import DecodeConfig, Decoder
from sensor.decode.ipv4 import ipv4_options
from sensor.decode.tcp import tcp_mss, tcp_option, tcp_sack_permitted, tcp_timestamp, tcp_wscale

__all__ = [
    "DecodeConfig",
    "Decoder",
    "ipv4_options",
    "tcp_mss",
    "tcp_option",
    "tcp_sack_permitted",
    "tcp_timestamp",
    "tcp_wscale",
]
