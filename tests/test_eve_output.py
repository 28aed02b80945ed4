"""EVE output: Suricata's timestamp format under several time zones, the writer, stats."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from sensor.errors import SekimoriError
from sensor.output.eve import EveWriteError, EveWriter, format_timestamp, stats_record

REPO = Path(__file__).resolve().parent.parent
TS = 1463139836  # 2016-05-13T11:43:56Z


@pytest.fixture
def set_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    def apply(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    yield apply
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("UTC0", "2016-05-13T11:43:56.172149+0000"),
        ("JST-9", "2016-05-13T20:43:56.172149+0900"),
        # POSIX rule for US Eastern: daylight saving time is in force in May.
        ("EST5EDT,M3.2.0,M11.1.0", "2016-05-13T07:43:56.172149-0400"),
        ("IST-5:30", "2016-05-13T17:13:56.172149+0530"),
    ],
)
def test_timestamp_is_local_time_with_numeric_offset(set_tz, zone: str, expected: str) -> None:
    set_tz(zone)
    assert format_timestamp(TS, 172149) == expected


def test_timestamp_pads_microseconds_and_carries_overflow(set_tz) -> None:
    set_tz("UTC0")
    assert format_timestamp(TS, 5) == "2016-05-13T11:43:56.000005+0000"
    assert format_timestamp(TS, 0) == "2016-05-13T11:43:56.000000+0000"
    assert format_timestamp(TS, 1_000_001) == "2016-05-13T11:43:57.000001+0000"


def test_writer_appends_one_json_object_per_line(tmp_path: Path) -> None:
    out = tmp_path / "eve.json"
    out.write_bytes(b'{"earlier":true}\n')
    records: list[dict[str, object]] = [
        {"timestamp": "t1", "event_type": "alert", "alert": {"signature_id": 1}},
        {"timestamp": "t2", "event_type": "stats", "stats": {1: 2}},  # non-str keys allowed
    ]
    with EveWriter(str(out)) as writer:
        for record in records:
            writer.write(record)
    lines = out.read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == [
        {"earlier": True},
        records[0],
        {"timestamp": "t2", "event_type": "stats", "stats": {"1": 2}},
    ]
    assert list(orjson.loads(lines[1])) == ["timestamp", "event_type", "alert"]  # order kept
    assert writer.records == 2


def test_writer_flush_makes_lines_visible_before_close(tmp_path: Path) -> None:
    out = tmp_path / "eve.json"
    writer = EveWriter(str(out))
    writer.write({"event_type": "flow"})
    writer.flush()
    assert out.read_bytes() == b'{"event_type":"flow"}\n'
    writer.close()
    writer.close()  # closing twice is harmless


def test_writer_to_stdout_in_a_real_process() -> None:
    code = (
        "from sensor.output.eve import EveWriter\n"
        "w = EveWriter('-')\n"
        "w.write({'event_type': 'alert', 'n': 1})\n"
        "w.write({'event_type': 'alert', 'n': 2})\n"
        "w.close()\n"
        "print('after close', flush=True)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, check=True, timeout=60
    )
    assert proc.stdout.splitlines() == [
        b'{"event_type":"alert","n":1}',
        b'{"event_type":"alert","n":2}',
        b"after close",  # stdout itself stays open
    ]


def test_unwritable_path_is_a_sekimori_error_naming_it(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "eve.json"
    with pytest.raises(EveWriteError, match=r"cannot open EVE output .*missing-dir/eve.json"):
        EveWriter(str(target))
    assert issubclass(EveWriteError, SekimoriError)


def test_write_error_names_the_path() -> None:
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full is absent")
    writer = EveWriter("/dev/full")
    with pytest.raises(EveWriteError, match="cannot write EVE output /dev/full: No space"):
        writer.write({"x": "y" * 100_000})  # larger than the buffer: reaches the device
    writer.write({"small": 1})  # buffered: the error comes when it is flushed
    with pytest.raises(EveWriteError, match="/dev/full"):
        writer.close()


def test_write_after_close_is_reported(tmp_path: Path) -> None:
    writer = EveWriter(str(tmp_path / "e.json"))
    writer.close()
    with pytest.raises(EveWriteError, match="closed"):
        writer.write({})


def test_stats_record_nests_dotted_counters(set_tz) -> None:
    set_tz("UTC0")
    record = stats_record(
        TS,
        0,
        uptime=12,
        counters={
            "capture.kernel_packets": 10,
            "decoder.pkts": 9,
            "decoder.event.ipv4.trunc_pkt": 1,
        },
    )
    assert record == {
        "timestamp": "2016-05-13T11:43:56.000000+0000",
        "event_type": "stats",
        "stats": {
            "uptime": 12,
            "capture": {"kernel_packets": 10},
            "decoder": {"pkts": 9, "event": {"ipv4": {"trunc_pkt": 1}}},
        },
    }


def test_stats_record_rejects_counter_under_counter() -> None:
    with pytest.raises(ValueError, match=r"decoder\.pkts\.x"):
        stats_record(TS, 0, 1, {"decoder.pkts": 1, "decoder.pkts.x": 2})
