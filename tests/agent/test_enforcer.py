"""The nftables enforcer: script generation as a unit, then real nft in a fresh namespace."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensor_agent.enforcer import (
    DEFAULT_ALLOWED_SERVICES,
    EnforcerError,
    EnforcerSettings,
    NftablesEnforcer,
    NoEnforcer,
    QuarantinedHost,
    Service,
    build_enforcer,
    delete_table_script,
    elements_script,
    quarantine_payload,
    ruleset_script,
    set_elements,
)
from tests.contract import validate

SERVICES = [Service.parse(s) for s in DEFAULT_ALLOWED_SERVICES]
MAC = "02:00:00:00:00:66"
IP = "198.18.4.66"


# ---------------------------------------------------------------- pure script generation


def test_ruleset_replaces_the_table_atomically_with_empty_sets() -> None:
    script = ruleset_script("inet", "lan_guard", "198.18.4.1", SERVICES)
    lines = script.splitlines()
    # create-then-delete first: the delete never fails, a stale table is replaced in one go
    assert lines[:3] == [
        "table inet lan_guard",
        "delete table inet lan_guard",
        "table inet lan_guard {",
    ]
    assert "set quarantined_mac { type ether_addr; }" in script
    assert "set quarantined_ip { type ipv4_addr; }" in script
    assert "type filter hook forward priority filter - 10; policy accept;" in script
    assert "type filter hook input priority filter - 10; policy accept;" in script
    for match in (
        "ether saddr @quarantined_mac jump from_quarantined",
        "ip saddr @quarantined_ip jump from_quarantined",
        "ether daddr @quarantined_mac jump to_quarantined",
        "ip daddr @quarantined_ip jump to_quarantined",
        "ether saddr @quarantined_mac jump from_quarantined_local",
    ):
        assert match in script


def test_forwarded_services_only_to_the_gateway_or_broadcast() -> None:
    script = ruleset_script("inet", "lan_guard", "198.18.4.1", SERVICES)
    for proto, port in (("udp", 53), ("tcp", 53), ("udp", 67)):
        assert (
            "ip daddr { 198.18.4.1, 255.255.255.255 } "
            f"meta l4proto {proto} th dport {port} accept" in script
        )
        assert f"ip saddr 198.18.4.1 meta l4proto {proto} th sport {port} accept" in script
        assert f"\t\tmeta l4proto {proto} th dport {port} accept" in script  # to the node
    assert script.count("counter drop") == 3
    assert "ether type arp" not in script  # inet hooks never see ARP


def test_without_gateway_only_broadcast_and_the_node_itself() -> None:
    script = ruleset_script("inet", "lan_guard", None, [Service("udp", 67)])
    assert "ip daddr { 255.255.255.255 } meta l4proto udp th dport 67 accept" in script
    assert "ip saddr" not in script.replace("ip saddr @quarantined_ip", "")


def test_bridge_family_lets_arp_through() -> None:
    script = ruleset_script("bridge", "lan_guard", "198.18.4.1", SERVICES)
    assert script.startswith("table bridge lan_guard\ndelete table bridge lan_guard\n")
    assert script.count("ether type arp accept") == 3


def test_no_allowed_services_means_drop_everything() -> None:
    script = ruleset_script("inet", "lan_guard", "198.18.4.1", [])
    assert "accept\n" not in script.replace("policy accept;", "")


@pytest.mark.parametrize(
    ("family", "table", "gateway", "message"),
    [
        ("ip6", "lan_guard", None, "not 'inet' or 'bridge'"),
        ("inet", "lan guard; flush ruleset", None, "not a plain identifier"),
        ("inet", "lan_guard", "198.18.4.1; flush ruleset", "Only decimal digits permitted"),
    ],
)
def test_bad_table_settings_are_refused(
    family: str, table: str, gateway: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ruleset_script(family, table, gateway, SERVICES)  # type: ignore[arg-type]


def test_elements_are_one_transaction() -> None:
    assert elements_script("add", "inet", "lan_guard", [MAC], [IP]) == (
        f"add element inet lan_guard quarantined_mac {{ {MAC} }}\n"
        f"add element inet lan_guard quarantined_ip {{ {IP} }}\n"
    )
    assert elements_script("delete", "bridge", "t", ips=[IP]) == (
        f"delete element bridge t quarantined_ip {{ {IP} }}\n"
    )
    assert delete_table_script("inet", "lan_guard") == (
        "table inet lan_guard\ndelete table inet lan_guard\n"
    )


@pytest.mark.parametrize(
    ("macs", "ips"),
    [(["02:00:00:00:00:6G"], []), (["02-00-00-00-00-66"], []), ([], ["1.2.3.4 }; flush ruleset"])],
)
def test_elements_refuse_anything_but_addresses(macs: list[str], ips: list[str]) -> None:
    with pytest.raises(ValueError):
        elements_script("add", "inet", "lan_guard", macs, ips)


@pytest.mark.parametrize("text", ["udp/53", "TCP/443", " udp/67 "])
def test_service_parse(text: str) -> None:
    service = Service.parse(text)
    assert str(service) == text.strip().lower()


@pytest.mark.parametrize("text", ["53", "icmp/0", "udp/0", "udp/70000", "udp/", "dns"])
def test_service_parse_refuses_junk(text: str) -> None:
    with pytest.raises(ValueError, match="not 'tcp/PORT' or 'udp/PORT'"):
        Service.parse(text)


def test_set_elements_from_nft_json() -> None:
    listing = {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "lan_guard"}},
            {"set": {"name": "quarantined_mac", "elem": [MAC, "02:00:00:00:00:67"]}},
            {"set": {"name": "quarantined_ip", "type": "ipv4_addr"}},
        ]
    }
    assert set_elements(listing, "quarantined_mac") == {MAC, "02:00:00:00:00:67"}
    assert set_elements(listing, "quarantined_ip") == set()


def test_quarantine_payload_follows_the_contract() -> None:
    class Listed(NoEnforcer):
        def hosts(self) -> list[QuarantinedHost]:
            return [
                QuarantinedHost(MAC, IP, 1_795_000_000.25, "c1"),
                QuarantinedHost(MAC, None, 0, "c2"),
            ]

    payload = quarantine_payload("router-1", Listed(), 1_795_000_001.0)
    validate("quarantine", payload)
    assert payload["hosts"][0] == {
        "mac": MAC,
        "ip": IP,
        "since": "2026-11-18T11:06:40.250Z",
        "command_id": "c1",
    }
    assert payload["updated_at"] == "2026-11-18T11:06:41.000Z"


# ---------------------------------------------------------------- failures of nft itself


def test_missing_nft_binary_is_a_clear_error() -> None:
    enforcer = NftablesEnforcer(nft=["/nonexistent/nft"])
    with pytest.raises(EnforcerError, match=r"cannot run '/nonexistent/nft'"):
        enforcer.start()


def test_nft_complaint_is_surfaced(tmp_path: Path) -> None:
    fake = tmp_path / "nft"
    fake.write_text(
        "#!/bin/sh\necho 'Error: Could not process rule: Operation not permitted' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    enforcer = NftablesEnforcer(nft=[str(fake)])
    with pytest.raises(EnforcerError, match="nftables: Error: Could not process rule: Operation"):
        enforcer.start()


def test_commands_before_start_fail_cleanly() -> None:
    enforcer = NftablesEnforcer(nft=["/nonexistent/nft"])
    with pytest.raises(EnforcerError, match="not started"):
        enforcer.quarantine(MAC, IP, "c1")
    with pytest.raises(EnforcerError, match="not started"):
        enforcer.release(MAC)
    enforcer.close()  # nothing installed: a no-op


def test_build_enforcer_falls_back_to_none_with_the_reason() -> None:
    enforcer = build_enforcer("nftables", nft=["/nonexistent/nft"])
    assert enforcer.kind == "none"
    with pytest.raises(EnforcerError, match="nftables enforcer failed to start: nftables: cannot"):
        enforcer.quarantine(MAC, IP, "c1")
    assert build_enforcer("none").kind == "none"
    with pytest.raises(ValueError, match="not 'nftables' or 'none'"):
        build_enforcer("iptables")


def test_bad_allowed_service_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="not 'tcp/PORT'"):
        NftablesEnforcer(allowed_services=["dns"])


# ---------------------------------------------------------------- real nft in a namespace


def _root_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create a network namespace for real nftables (CI runs as root)"
    if shutil.which("nft") is None or shutil.which("ip") is None:
        return "needs nft (nftables) and ip (iproute2) installed"
    return None


needs_root = pytest.mark.skipif(_root_reason() is not None, reason=_root_reason() or "")


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh, empty network namespace (no links, no addresses: no traffic possible)."""
    name = f"lg4-unit{os.getpid()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False, timeout=15)
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=15)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=15)


def nft_in(ns: str) -> list[str]:
    return ["ip", "netns", "exec", ns, "nft"]


def ruleset(ns: str) -> dict[str, object]:
    out = subprocess.run(
        [*nft_in(ns), "-j", "list", "ruleset"],
        capture_output=True,
        text=True,
        check=True,
        timeout=15,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def tables(ns: str) -> list[tuple[str, str]]:
    return [
        (item["table"]["family"], item["table"]["name"])
        for item in ruleset(ns)["nftables"]  # type: ignore[attr-defined]
        if "table" in item
    ]


@needs_root
@pytest.mark.parametrize("family", ["inet", "bridge"])
def test_real_nft_lifecycle(netns: str, family: str) -> None:
    enforcer = NftablesEnforcer(family=family, gateway="198.18.4.1", nft=nft_in(netns))  # type: ignore[arg-type]
    enforcer.start()
    assert tables(netns) == [(family, "lan_guard")]
    assert enforcer.installed() == (set(), set())

    enforcer.quarantine(MAC, IP, "c1")
    enforcer.quarantine("02:00:00:00:00:67", None, "c2")
    assert enforcer.installed() == ({MAC, "02:00:00:00:00:67"}, {IP})
    assert [h.command_id for h in enforcer.hosts()] == ["c1", "c2"]

    # The host moved to another address: the old one leaves the set in the same transaction.
    enforcer.quarantine(MAC, "198.18.4.67", "c3")
    assert enforcer.installed() == ({MAC, "02:00:00:00:00:67"}, {"198.18.4.67"})
    # Idempotent: the same quarantine again changes nothing.
    enforcer.quarantine(MAC, "198.18.4.67", "c4")
    assert enforcer.installed()[1] == {"198.18.4.67"}
    assert enforcer.hosts()[-1].command_id == "c3"

    assert enforcer.release(MAC) is True
    assert enforcer.release(MAC) is False
    assert enforcer.installed() == ({"02:00:00:00:00:67"}, set())

    enforcer.close()
    assert tables(netns) == []
    assert enforcer.hosts() == []
    enforcer.close()  # twice is fine


@needs_root
def test_shared_ip_stays_until_its_last_host_is_released(netns: str) -> None:
    enforcer = NftablesEnforcer(nft=nft_in(netns))
    enforcer.start()
    try:
        enforcer.quarantine(MAC, IP, "c1")
        enforcer.quarantine("02:00:00:00:00:67", IP, "c2")
        enforcer.release(MAC)
        assert enforcer.installed() == ({"02:00:00:00:00:67"}, {IP})
        enforcer.release("02:00:00:00:00:67")
        assert enforcer.installed() == (set(), set())
    finally:
        enforcer.close()


@needs_root
def test_stale_table_from_a_crashed_run_is_replaced(netns: str) -> None:
    crashed = NftablesEnforcer(nft=nft_in(netns))
    crashed.start()
    crashed.quarantine(MAC, IP, "c1")  # then the process "dies" without close()
    atexit.unregister(crashed.close)
    other = subprocess.run(
        [*nft_in(netns), "-f", "-"],
        input="table inet someone_else { chain c { type filter hook forward priority 0; }; }\n",
        text=True,
        check=True,
        timeout=15,
    )
    assert other.returncode == 0

    fresh = NftablesEnforcer(nft=nft_in(netns))
    fresh.start()
    assert fresh.installed() == (set(), set())
    fresh.close()
    assert tables(netns) == [("inet", "someone_else")]  # never touches other tables


@needs_root
def test_nft_failure_mid_run_is_an_error_not_a_crash(netns: str) -> None:
    enforcer = NftablesEnforcer(nft=nft_in(netns))
    enforcer.start()
    enforcer.quarantine(MAC, IP, "c1")
    subprocess.run([*nft_in(netns), "delete", "table", "inet", "lan_guard"], check=True, timeout=15)
    with pytest.raises(EnforcerError, match=r"^nftables: .*No such file or directory"):
        enforcer.release(MAC)
    assert [h.mac for h in enforcer.hosts()] == [MAC]  # state kept: nothing was changed
    with pytest.raises(EnforcerError, match=r"^nftables: "):
        enforcer.quarantine("02:00:00:00:00:67", None, "c2")
    enforcer.close()
    assert tables(netns) == []


SIGNAL_SCRIPT = """
import sys, time
from sensor_agent.enforcer import NftablesEnforcer
enforcer = NftablesEnforcer(nft=["ip", "netns", "exec", sys.argv[1], "nft"])
enforcer.start()
enforcer.quarantine("02:00:00:00:00:66", "198.18.4.66", "c1")
print("ready", flush=True)
time.sleep(30)
"""


def default_signals() -> None:
    """The child starts with default dispositions whatever runs this test: under nohup or as a
    shell's background job SIGHUP or SIGINT is ignored, children inherit that, and the
    enforcer (rightly) leaves an ignored signal ignored."""
    for signum in (signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)


@needs_root
@pytest.mark.parametrize(
    ("signum", "exit_code"),
    [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, -signal.SIGINT)],
)
def test_termination_signal_removes_the_table(netns: str, signum: int, exit_code: int) -> None:
    # SIGTERM/SIGHUP become SystemExit(128+n); SIGINT is Python's KeyboardInterrupt, after
    # whose clean-up the interpreter re-raises SIGINT on itself (exit status -2).
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGNAL_SCRIPT, netns],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,  # noqa: PLW1509 (a test's child, no threads involved)
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        assert tables(netns) == [("inet", "lan_guard")]
        proc.send_signal(signum)
        assert proc.wait(timeout=10) == exit_code
    finally:
        proc.kill()
        proc.wait()
    assert tables(netns) == []


# ---------------------------------------------------------------- settings


def test_settings_defaults_are_safe() -> None:
    settings = EnforcerSettings()
    assert settings.kind == "none"  # enforcing is opt-in
    assert settings.family == "inet"
    assert settings.allowed_services == ("udp/53", "tcp/53", "udp/67")
    assert settings.allowlist == ()


def test_settings_report_every_problem_at_once() -> None:
    with pytest.raises(ValueError, match="invalid enforcer settings") as err:
        EnforcerSettings(
            kind="iptables",  # type: ignore[arg-type]
            family="ip6",  # type: ignore[arg-type]
            gateway_ip="192.168.1",
            gateway_mac="02:00:00:00:00",
            allowlist=("printer", "02-00-00-00-00-AA", "198.18.4.7"),
            allowed_services=("dns",),
        )
    message = str(err.value)
    for fragment in (
        "enforcer.backend: 'iptables'",
        "enforcer.family: 'ip6'",
        "network.gateway_ip: '192.168.1'",
        "network.gateway_mac: '02:00:00:00:00'",
        "enforcer.allowlist: 'printer'",
        "enforcer.allowed_services: allowed service 'dns'",
    ):
        assert fragment in message
    assert "02-00-00-00-00-AA" not in message  # valid spellings pass


def test_settings_from_the_agents_config_tree() -> None:
    raw = {
        "network": {"gateway_ip": "198.18.4.1", "gateway_mac": "02:00:00:00:00:01"},
        "enforcer": {
            "backend": "nftables",
            "family": "bridge",
            "allowlist": ["02:00:00:00:00:aa", "198.18.4.7"],
            "allowed_services": ["udp/53"],
        },
    }
    assert EnforcerSettings.from_config(raw) == EnforcerSettings(
        kind="nftables",
        family="bridge",
        gateway_ip="198.18.4.1",
        gateway_mac="02:00:00:00:00:01",
        allowlist=("02:00:00:00:00:aa", "198.18.4.7"),
        allowed_services=("udp/53",),
    )


def test_settings_from_a_config_without_enforcer_keys_are_the_defaults() -> None:
    assert EnforcerSettings.from_config({}) == EnforcerSettings()
    assert EnforcerSettings.from_config({"network": {"gateway_ip": None}}) == EnforcerSettings()
    assert EnforcerSettings.from_config({"enforcer": {"enabled": True}}).kind == "nftables"


def test_settings_from_config_refuse_an_unknown_backend() -> None:
    with pytest.raises(ValueError, match=r"enforcer\.backend: 'pf' is not 'nftables' or 'none'"):
        EnforcerSettings.from_config({"enforcer": {"backend": "pf"}})
