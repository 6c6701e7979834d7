"""How long one agent payload holds Home Assistant's event loop (hostile or just big).

Runs ``tests/ha/intake_probe.py`` (the real coordinator, HA in process, MQTT messages fired
as the broker would deliver them) and prints, per payload, how long the MQTT callback held
the event loop (handler and entity updates included) and the intake's share of it (the
decoding done on the loop), beside the baseline measured in the same run: the landed
intake's decode and validation on the loop, a lower bound of what it held. Payloads: a
hosts list of 100,000 entries (refused by size), 4,096 and 512 entries (decoded in a worker
thread), a JSON nested 10,000 deep, and 60 hosts (small: decoded on the loop).

Target: size no longer matters: no payload holds the loop longer than the small hosts list
(whose time is mostly the handler's own work). Home Assistant needs Python 3.13
(``.venv``), so the measured part runs there as a pytest subprocess; this script itself is
plain Python 3.11.

    .venv/bin/python benchmarks/ha_intake.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HA_PYTHON = ROOT / ".venv" / "bin" / "python"
PROBE = "tests/ha/intake_probe.py"
TARGET_MS = 5.0


def measure(workdir: Path) -> list[dict[str, float | str]]:
    figures = workdir / "figures.json"
    done = subprocess.run(
        [str(HA_PYTHON), "-m", "pytest", PROBE, "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env={"LAN_GUARD_INTAKE_FIGURES": str(figures), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0 or not figures.exists():
        tail = "\n".join(done.stdout.splitlines()[-30:])
        raise SystemExit(f"the probe failed (exit {done.returncode}):\n{tail}")
    rows: list[dict[str, float | str]] = json.loads(figures.read_text(encoding="utf-8"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    if not HA_PYTHON.exists():
        print(f"ha_intake: needs the HA venv at {HA_PYTHON}; skipped.")
        return 0
    with tempfile.TemporaryDirectory(prefix="lan-guard-intake-bench-") as tmp:
        rows = measure(Path(tmp))
    print("Event loop held per payload (best of 3, ms)")
    print(
        f"{'payload':<20} {'size KiB':>9} {'held now':>9} {'of which decoding':>18}"
        f" {'landed decode+validate':>23}"
    )
    for row in rows:
        decoding = float(row["decode_ms"])
        print(
            f"{row['payload']!s:<20} {float(row['kib']):>9.1f} {float(row['held_ms']):>9.2f}"
            f" {(f'{decoding:.2f}' if decoding else 'worker'):>18}"
            f" {float(row['landed_ms']):>23.2f}"
        )
    small = float(rows[-1]["held_ms"])
    worst = max(float(row["held_ms"]) for row in rows[:-1])
    verdict = "met" if worst <= small else "MISSED"
    print(
        f"\nTarget: no payload holds the loop longer than the small one ({small:.2f} ms): {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
