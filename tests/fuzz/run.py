"""Run every fuzz target (tests/fuzz/targets.py) under atheris for a bounded time each.

Usage: ``python tests/fuzz/run.py [--seconds N] [--only NAME ...]`` (``make fuzz``; the
default is ``SEKIMORI_FUZZ_SECONDS`` or 60 s per target). For each target the seed corpus
is written to ``out/fuzz/corpus/<target>/`` from real inputs (kept between runs, so the
corpus grows), then a child process fuzzes it with coverage instrumentation of the
``sensor``, ``signatures`` and ``responders`` packages. A crash, an input slower than
``--input-timeout`` seconds (a hang) or a process above ``--rss-mb`` is saved under
``out/fuzz/artifacts/`` and makes the run fail; copy the file to
``tests/fuzz/regressions/<target>/`` once fixed so the test suite replays it forever.

Non-goals: distributed or continuous fuzzing; the child is libFuzzer driven by atheris.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = ROOT / "out" / "fuzz"
INSTRUMENTED = ["sensor", "signatures", "responders"]


def _worker(name: str, libfuzzer_args: list[str]) -> None:
    """In the child: instrument the project's packages, then hand control to libFuzzer."""
    import atheris

    sys.path.insert(0, str(HERE))
    with atheris.instrument_imports(include=INSTRUMENTED):
        import targets

    target = targets.targets()[name]()
    atheris.Setup([sys.argv[0], *libfuzzer_args], target.run)
    atheris.Fuzz()


def write_seeds(name: str) -> Path:
    sys.path.insert(0, str(HERE))
    import targets

    corpus = OUT / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    target = targets.targets()[name]()
    for seed in target.seeds():
        (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    return corpus


def fuzz(name: str, seconds: int, input_timeout: int, rss_mb: int) -> tuple[bool, str]:
    corpus = write_seeds(name)
    artifacts = OUT / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--",
           f"-max_total_time={seconds}", f"-timeout={input_timeout}", f"-rss_limit_mb={rss_mb}",
           "-max_len=65536", f"-artifact_prefix={artifacts}/{name}-", "-print_final_stats=1",
           str(corpus)]  # fmt: skip
    log = OUT / f"{name}.log"
    with open(log, "wb") as fh:
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT,
                              timeout=seconds + 600, check=False)  # fmt: skip
    tail = log.read_text(errors="replace").splitlines()[-40:]
    stats = " ".join(ln for ln in tail if ln.startswith("stat::number_of_executed_units"))
    return done.returncode == 0, f"{stats or 'no stats'} (log: {log})"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        rest = argv[2:]
        _worker(argv[1], rest[1:] if rest[:1] == ["--"] else rest)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--seconds", type=int, default=int(os.environ.get("SEKIMORI_FUZZ_SECONDS", "60"))
    )
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--input-timeout", type=int, default=10)
    ap.add_argument("--rss-mb", type=int, default=2048)
    args = ap.parse_args(argv)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print(
            "fuzz: atheris is not installed; run: .venv/bin/pip install -e '.[fuzz]'",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, str(HERE))
    import targets

    names = args.only or list(targets.targets())
    failed = []
    for name in names:
        t0 = time.monotonic()
        ok, info = fuzz(name, args.seconds, args.input_timeout, args.rss_mb)
        print(f"fuzz {name:8s} {'ok   ' if ok else 'CRASH'} {time.monotonic() - t0:5.0f}s  {info}")
        if not ok:
            failed.append(name)
    if failed:
        print(
            f"fuzz: crashes in {', '.join(failed)}; inputs in {OUT / 'artifacts'}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
