"""The reset watcher on a real interface: frames written into one end of a veth pair the
test creates (IPv6 off, no addresses: nothing else talks on it) reach the watcher on the
other end, which decides ``failed`` on a challenge ACK and ``confirmed`` on silence."""

from __future__ import annotations

import threading
import time
from datetime import UTC

import pytest

from responders.inject import RawSender, RstSpec, build_rst
from responders.outcome import CONFIRMED, FAILED, FlowWatcher, ResetWatch, Verdict

pytestmark = pytest.mark.root
A, B = ("10.88.0.1", 40000), ("10.88.0.2", 80)
MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def _watch(verdicts: list[Verdict], done: threading.Event) -> ResetWatch:
    def report(v: Verdict) -> None:
        verdicts.append(v)
        done.set()

    return ResetWatch(client=(bytes([10, 88, 0, 1]), A[1]), server=(bytes([10, 88, 0, 2]), B[1]),
                      to_server_seq=1000, to_client_seq=5000, sent_at=time.time(),
                      window_s=0.4, grace_s=0.0, on_verdict=report)  # fmt: skip


def test_challenge_ack_fails_and_silence_confirms(veth: tuple[str, str]) -> None:
    a, b = veth
    results: dict[str, list[Verdict]] = {}
    watcher = FlowWatcher(b)
    sender = RawSender(a)
    try:
        watcher.start()
        sender.open()
        for name, answer in (("ack", True), ("quiet", False)):
            verdicts: list[Verdict] = []
            done = threading.Event()
            watcher.arm()
            watcher.watch(_watch(verdicts, done))
            if answer:  # the server answers our RST with an ACK carrying its real RCV.NXT
                spec = RstSpec(MAC_B, MAC_A, B[0], A[0], B[1], A[1], 5000, 1460, 64)
                frame = bytearray(build_rst(spec))
                frame[14 + 20 + 13] = 0x10  # TCP flags: ACK only
                sender.send([bytes(frame)])
            done.wait(3)
            results[name] = verdicts
        assert watcher.stats.snapshot() == {"confirmed": 1, "failed": 1, "watching": 0}
    finally:
        sender.close()
        watcher.stop()
    assert [v.status for v in results["ack"]] == [FAILED]
    assert "challenge ACK" in results["ack"][0].reason
    assert [v.status for v in results["quiet"]] == [CONFIRMED]


def test_a_watch_whose_thread_died_leaves_resets_unconfirmed(
    veth: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    from datetime import datetime

    from responders.builtin.tcp_reset import TcpResetResponder

    a, b = veth
    responder = TcpResetResponder({"interface": a, "watch_interface": b})
    responder.start()
    try:
        watcher = responder._watchers[b]
        assert watcher.alive
        assert watcher._sock is not None
        watcher._sock.close()  # the next receive fails, as on an interface torn down
        deadline = time.monotonic() + 5
        while watcher.alive and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not watcher.alive
        assert "receive failed" in caplog.text and "Traceback" not in caplog.text
        flow = {"src_ip": A[0], "src_port": A[1], "dest_ip": B[0], "dest_port": B[1]}
        state = {"toserver": {"next_seq": 1000, "mac": MAC_A, "ttl": 64},
                 "toclient": {"next_seq": 5000, "mac": MAC_B, "ttl": 64}}  # fmt: skip
        alert = {"proto": "TCP", "direction": "to_server", "flow": flow, **flow,
                 "timestamp": datetime.now(UTC).isoformat(),
                 "sekimori": {"tcp": state}}  # fmt: skip
        outcome = responder.respond(alert, enforce=True)
    finally:
        responder.stop()
    assert outcome.details["decision"] == "reset"
    assert outcome.details["check"] == "unconfirmed: no watch on this host"
