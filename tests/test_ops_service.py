"""``sekimori install-service``: the generated units pass ``systemd-analyze verify``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from click.testing import CliRunner
from conftest import skip_or_fail

from cli.common import CliState
from cli.main import sekimori
from cli.service_cmd import RESPONDER_UNIT, SENSOR_UNIT, render_units


def test_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        skip_or_fail("systemd-analyze is not installed (apt-get install systemd)")
    binary = shutil.which("sekimori") or str(Path(__file__).parents[1] / ".venv/bin/sekimori")
    result = CliRunner().invoke(
        sekimori,
        ["install-service", "--unit-dir", str(tmp_path), "--no-systemctl", "--bin", binary],
        obj=CliState(),
    )
    assert result.exit_code == 0, result.output
    # verify wants instances of the templates: name them as an operator would
    (tmp_path / "sekimori-sensor@lo.service").symlink_to(tmp_path / SENSOR_UNIT)
    (tmp_path / "sekimori-responder@reset.service").symlink_to(tmp_path / RESPONDER_UNIT)
    proc = subprocess.run(
        [analyze, "verify", "sekimori-sensor@lo.service", "sekimori-responder@reset.service"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


def test_hardening_and_signals() -> None:
    units = render_units("/usr/bin/sekimori", "/etc/sekimori/sekimori.toml", "sekimori")
    sensor = units[SENSOR_UNIT]
    for line in ("User=sekimori", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN",
                 "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN",
                 "ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM",
                 "Restart=on-failure", "ReadOnlyPaths=/etc/sekimori"):  # fmt: skip
        assert line in sensor.splitlines()
    assert "run --iface %i" in sensor
    assert " respond " in units[RESPONDER_UNIT]


def test_print_changes_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        sekimori, ["install-service", "--print", "--unit-dir", str(tmp_path / "u")],
        obj=CliState(),
    )  # fmt: skip
    assert result.exit_code == 0
    assert "[Service]" in result.output
    assert not (tmp_path / "u").exists()
