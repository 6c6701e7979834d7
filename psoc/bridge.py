"""``site add``: a site's credentials on the PSOC broker, its ACL, and its bridge configuration.

The PSOC broker (mosquitto) authenticates each site with its own user and password
(``mosquitto_passwd`` keeps the hashes) and lets it publish only under its own prefix
``sites/<site_id>/...`` and read only the requests meant for it. The ACL file is written
whole from the database each time, so it never drifts from the sites the PSOC knows.
The bridge configuration goes to the site's broker (a ``conf.d`` file, or the Home
Assistant Mosquitto add-on's ``customize`` folder) and lists, one line each, the only
sub-topics that cross (``psoc.topics``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from psoc import topics


def site_user(site_id: str) -> str:
    return f"site-{site_id}"


def set_password(passwords: Path, user: str, password: str) -> None:
    """Add or change ``user`` in mosquitto's password file (hashed by ``mosquitto_passwd``)."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        raise RuntimeError("mosquitto_passwd not found (it ships with the mosquitto package)")
    passwords.parent.mkdir(parents=True, exist_ok=True)
    if not passwords.exists():
        passwords.touch(mode=0o600)
    done = subprocess.run(
        [tool, "-b", str(passwords), user, password], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"mosquitto_passwd failed: {done.stderr.strip()}")


def acl_text(service_user: str, sites: Iterable[tuple[str, str]]) -> str:
    """The PSOC broker's ACL: the PSOC's own service account and one block per site."""
    lines = [
        "# LAN Guard PSOC broker ACL, written by `lan-guard-psoc site add`: do not edit by hand.",
        "",
        "# the PSOC's workers and console: read every site, send only requests to sites",
        f"user {service_user}",
        f"topic read {topics.SITES}/#",
    ]
    lines += [f"topic write {topics.agent_topic('+', '+', sub)}" for sub in topics.INBOUND]
    for site_id, user in sorted(sites):
        lines += [
            "",
            f"# site {site_id}: publishes under its own prefix only, reads its requests",
            f"user {user}",
        ]
        lines += [f"topic write {topics.agent_topic(site_id, '+', sub)}" for sub in topics.OUTBOUND]
        lines.append(f"topic write {topics.bridge_topic(site_id)}")
        lines += [f"topic read {topics.agent_topic(site_id, '+', sub)}" for sub in topics.INBOUND]
    return "\n".join(lines) + "\n"


def write_acl(path: Path, text: str) -> None:
    """Replace the ACL file atomically (the broker may re-read it at any time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".acl-")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def bridge_config(
    site_id: str,
    password: str,
    *,
    psoc_host: str,
    psoc_port: int = 8883,
    cafile: str = "/etc/mosquitto/certs/lan-guard-psoc-ca.crt",
    local_prefix: str = "lan_guard",
    tls: bool = True,
) -> str:
    """The site broker's bridge section: TLS to the PSOC, this site's credentials, and
    exactly the sub-topics that cross, each in its one direction."""
    remote = f"{topics.SITES}/{site_id}/{topics.REMOTE_PREFIX}/"
    local = f"{local_prefix}/"
    lines = [
        f"# LAN Guard: forward this site's agents to the provider's PSOC as site {site_id!r}.",
        "# Only the sub-topics listed below cross the bridge. Never forwarded: the site's",
        f"# training data ({local}+/training/#), the integration's commands to its agents",
        f"# ({local}+/command towards the PSOC), and anything else under {local}.",
        f"connection lan-guard-psoc-{site_id}",
        f"address {psoc_host}:{psoc_port}",
        "bridge_protocol_version mqttv311",
        f"remote_clientid lan-guard-site-{site_id}",
        f"remote_username {site_user(site_id)}",
        f"remote_password {password}",
    ]
    if tls:
        lines += [f"bridge_cafile {cafile}", "bridge_insecure false", "bridge_tls_version tlsv1.2"]
    lines += [
        "cleansession false",
        "try_private true",
        "restart_timeout 2 30",
        "notifications true",
        f"notification_topic {topics.bridge_topic(site_id)}",
        "",
        "# site -> PSOC",
    ]
    lines += [f"topic +/{sub} out 1 {local} {remote}" for sub in topics.OUTBOUND]
    lines += [
        "",
        "# PSOC -> site (replay requests to agents; evacuation requests and labels to HA)",
    ]
    lines += [f"topic +/{sub} in 1 {local} {remote}" for sub in topics.INBOUND]
    return "\n".join(lines) + "\n"
