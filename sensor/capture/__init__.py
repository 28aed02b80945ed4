"""Packet sources: capture files (pcap, pcapng) and live interfaces (libpcap).

Both yield ``(ts_sec, ts_usec, linktype, data, wirelen)`` tuples; see docs/capture.md.
"""

from sensor.capture.live import LiveCapture
from sensor.capture.pcapfile import CaptureFile, open_capture
from sensor.capture.records import MAX_CAPLEN, Record

__all__ = ["MAX_CAPLEN", "CaptureFile", "LiveCapture", "Record", "open_capture"]
