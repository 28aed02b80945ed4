"""Run sekimori on a capture the way the bench measures it: pipeline or N workers, profiled.

Usage: ``bench/sekimori_driver.py --pcap F --rules R [--eve OUT] [--workers N]
[--set K=V ...] [--profile] [--profile-rules] [--json OUT.json]``. Prints the run summary
(and the profile) on stderr. ``--profile`` instruments the pipeline's loop with
sensor.profile.Profiler from the outside (this process only) until ``sekimori run
--profile`` is wired into sensor/pipeline.py.

Non-goals: anything ``sekimori run`` does besides running (progress bars, config files).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sensor.detect as detect
import sensor.pipeline as pipeline
from cli.run import format_summary
from sensor.config import load_config
from sensor.logs import setup_logging
from sensor.profile import Profiler, format_report
from sensor.workers import run_parallel


@contextlib.contextmanager
def profiled(profiler: Profiler) -> Iterator[None]:
    """Instrument every pipeline loop built in this process (capture stage included)."""
    base_loop, base_open = pipeline.PacketLoop, pipeline.open_capture

    class Loop(base_loop):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object) -> None:
            super().__init__(*args)
            profiler.instrument(self)

        def finish(self) -> None:
            super().finish()
            profiler.stop()

    class Source:
        """The capture file, its frames fetched through the profiler's capture timer."""

        def __init__(self, inner: object) -> None:
            self._inner = inner

        def __iter__(self) -> Iterator[object]:
            return profiler.frames(self._inner)  # type: ignore[arg-type]

        def __getattr__(self, name: str) -> object:
            return getattr(self._inner, name)

    def open_capture(path: str) -> object:
        return Source(base_open(path))

    checks = detect.header_ok, detect.packet_buffers_ok
    pipeline.PacketLoop, pipeline.open_capture = Loop, open_capture  # type: ignore[misc, assignment]
    if profiler.rules:  # the per-signature steps of Detector._run, charged per rule
        detect.header_ok = profiler.rule_timed(checks[0], "header")
        detect.packet_buffers_ok = profiler.rule_timed(checks[1], "payload")
    try:
        yield
    finally:
        pipeline.PacketLoop, pipeline.open_capture = base_loop, base_open  # type: ignore[misc]
        detect.header_ok, detect.packet_buffers_ok = checks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--rules", action="append", required=True)
    ap.add_argument("--eve")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--profile-rules", action="store_true")
    ap.add_argument("--json", help="write the profile as JSON here")
    a = ap.parse_args()
    config, _warnings = load_config(None, sets=[*a.sets, "logging.level=warning"])
    setup_logging(config.log.level, config.log.format)
    request = pipeline.RunRequest(pcap=a.pcap, iface=None, rule_files=tuple(a.rules), eve=a.eve)
    profiler = Profiler(rules=a.profile_rules) if a.profile or a.profile_rules else None
    if profiler is None:
        summary = run_parallel(config, request, a.workers)
    else:
        with profiled(profiler):
            summary = pipeline.run(config, request)
    print(format_summary(summary), file=sys.stderr)
    if profiler is not None:
        report = profiler.report()
        print(format_report(report), file=sys.stderr)
        if a.json:
            Path(a.json).write_text(json.dumps(report.as_dict(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
