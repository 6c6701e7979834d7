"""``lan-guard-psoc demo`` runs on its own (SQLite, a local broker, three replayed sites)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.broker


def test_the_demo_shows_three_sites_incidents() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "psoc.cli", "demo", "--exit-after", "0"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Open incidents: 3" in done.stdout
    assert done.stdout.count("DESKTOP-K3V9Q2") == 3
    assert "Console:  http://127.0.0.1:" in done.stdout
