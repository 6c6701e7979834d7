"""The shipped systemd units as tests read them: their settings, and systemd's own check."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
NO_VERIFY = "needs systemd-analyze" if shutil.which("systemd-analyze") is None else None


def unit_settings(unit: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of the unit (keys may repeat), comments left out."""
    settings: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def verify(units: list[Path], executable: tuple[str, Path], directory: Path) -> None:
    """``systemd-analyze verify`` of ``units`` as shipped, copied to ``directory`` with the
    installed path ``executable[0]`` replaced by ``executable[1]`` (verify checks that the
    binary exists, and that a timer's service is there)."""
    copies = []
    for unit in units:
        copy = directory / unit.name
        copy.write_text(unit.read_text().replace(executable[0], str(executable[1])))
        copies.append(str(copy))
    done = subprocess.run(
        ["systemd-analyze", "verify", *copies],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    problems = [ln for ln in done.stderr.splitlines() if any(u.name in ln for u in units)]
    assert done.returncode == 0 and not problems, done.stderr
