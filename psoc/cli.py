"""``lan-guard-psoc``: the PSOC's database, sites, accounts, workers and console.

Settings come from flags, else environment variables (``LAN_GUARD_PSOC_DB``,
``LAN_GUARD_PSOC_MQTT_HOST``/``_PORT``/``_USERNAME``/``_PASSWORD``/``_CAFILE``,
``LAN_GUARD_PSOC_SECRET`` for the console's session cookies, ``LAN_GUARD_PSOC_PASSWORD`` for
``user add``), else defaults (SQLite file in the current folder, a broker on 127.0.0.1:1883,
the console on 127.0.0.1:8080). Exit codes: 0 ok, 1 runtime failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import uvicorn

from psoc import __version__, bridge, demo, topics
from psoc.console import auth
from psoc.console.app import ConsoleSettings, create_app
from psoc.db.engine import DEFAULT_URL, make_engine, upgrade
from psoc.federation import run as federation_run
from psoc.ingest.worker import BrokerSettings, Worker
from psoc.sitechannel import SiteChannel
from psoc.store import ROLES, Store

log = logging.getLogger("lan_guard_psoc")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"LAN_GUARD_PSOC_{name}", default)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lan-guard-psoc", description="LAN Guard PSOC: the provider's operations center."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--db", default=_env("DB", DEFAULT_URL), help=f"database URL (default {DEFAULT_URL})"
    )
    parser.add_argument("--log-level", default="INFO")
    mqtt = argparse.ArgumentParser(add_help=False)
    mqtt.add_argument("--mqtt-host", default=_env("MQTT_HOST", "127.0.0.1"))
    mqtt.add_argument("--mqtt-port", type=int, default=int(_env("MQTT_PORT", "1883") or 1883))
    mqtt.add_argument("--mqtt-username", default=_env("MQTT_USERNAME"))
    mqtt.add_argument("--mqtt-cafile", default=_env("MQTT_CAFILE"), help="CA of the broker (TLS)")
    mqtt.add_argument("--group", default="lan-guard-psoc", help="shared subscription group")
    web = argparse.ArgumentParser(add_help=False)
    web.add_argument("--host", default="127.0.0.1", help="console address (default loopback)")
    web.add_argument("--port", type=int, default=8080)
    web.add_argument(
        "--insecure-cookies",
        action="store_true",
        help="session cookie without Secure (plain HTTP on loopback only: demos and tests)",
    )

    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    db = commands.add_parser("db", help="database: upgrade to the newest schema")
    db.add_argument("action", choices=["upgrade"])
    site = commands.add_parser("site", help="add or list sites")
    site_cmd = site.add_subparsers(dest="site_command", required=True)
    add = site_cmd.add_parser(
        "add", help="add a site: broker credentials, ACL, bridge configuration"
    )
    add.add_argument("site_id")
    add.add_argument("--name", default="")
    add.add_argument(
        "--passwords", type=Path, required=True, help="the PSOC broker's password file"
    )
    add.add_argument(
        "--acl", type=Path, required=True, help="the PSOC broker's ACL file (rewritten)"
    )
    add.add_argument("--service-user", default="psoc", help="the PSOC's own broker account")
    add.add_argument("--psoc-host", required=True, help="the PSOC broker as sites reach it")
    add.add_argument("--psoc-port", type=int, default=8883)
    add.add_argument(
        "--site-cafile",
        default="/etc/mosquitto/certs/lan-guard-psoc-ca.crt",
        help="where the site keeps the PSOC's CA",
    )
    add.add_argument("--no-tls", action="store_true", help="plain MQTT (loopback demos only)")
    add.add_argument("--local-prefix", default="lan_guard", help="the site's topic prefix")
    add.add_argument("--bridge-out", type=Path, help="also write the bridge configuration here")
    site_cmd.add_parser("list", help="list sites")
    service = commands.add_parser(
        "service-user", help="create/update the PSOC's own broker account"
    )
    service.add_argument("name", nargs="?", default="psoc")
    service.add_argument("--passwords", type=Path, required=True)
    service.add_argument("--acl", type=Path, required=True)
    user = commands.add_parser("user", help="console accounts")
    user_cmd = user.add_subparsers(dest="user_command", required=True)
    uadd = user_cmd.add_parser(
        "add", help="add an account (password: LAN_GUARD_PSOC_PASSWORD or asked)"
    )
    uadd.add_argument("username")
    uadd.add_argument("--role", choices=ROLES, required=True)
    uadd.add_argument("--site", help="the customer's site (role customer only)")
    worker = commands.add_parser("worker", parents=[mqtt], help="store every site's messages")
    worker.add_argument("--client-id", default=f"lan-guard-psoc-worker-{os.uname().nodename}"[:60])
    commands.add_parser("console", parents=[mqtt, web], help="the operators' web console")
    serve = commands.add_parser(
        "serve", parents=[mqtt, web], help="one worker and the console in one process"
    )
    serve.add_argument("--client-id", default=f"lan-guard-psoc-worker-{os.uname().nodename}"[:60])
    demo_cmd = commands.add_parser(
        "demo", help="the PSOC with SQLite, a local broker and three replayed sites"
    )
    demo_cmd.add_argument("--port", type=int, help="console port (default: a free one)")
    demo_cmd.add_argument(
        "--dir", help="keep the database and logs here (default: a temporary folder)"
    )
    demo_cmd.add_argument("--exit-after", type=float, help="stop after this many seconds (tests)")
    federate = commands.add_parser(
        "federate",
        parents=[mqtt],
        help="a federated learning run (Flower), then the global model to the sites that trained",
    )
    federation_run.add_arguments(federate)
    node = commands.add_parser(
        "federate-node",
        help="register a site's SuperNode key: only registered nodes join federated rounds",
    )
    federation_run.add_node_arguments(node)
    remove = commands.add_parser(
        "federate-node-remove",
        help="unregister a site's SuperNodes (a site leaving, or an old key after a new one)",
    )
    federation_run.add_remove_arguments(remove)
    prune = commands.add_parser("prune", help="retention: delete old events and closed incidents")
    prune.add_argument("--events-days", type=float, default=90)
    prune.add_argument("--incidents-days", type=float, default=365)
    return parser


def _store(args: argparse.Namespace) -> Store:
    engine = make_engine(args.db)
    upgrade(engine)
    return Store(engine)


def _broker(args: argparse.Namespace) -> BrokerSettings:
    return BrokerSettings(
        host=args.mqtt_host,
        port=args.mqtt_port,
        username=args.mqtt_username,
        password=_env("MQTT_PASSWORD"),
        ca_file=args.mqtt_cafile,
        group=args.group,
    )


def _stop_event() -> threading.Event:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def _write_acl(store: Store, path: Path, service_user: str) -> None:
    bridge.write_acl(
        path, bridge.acl_text(service_user, [(s.site_id, s.mqtt_user) for s in store.sites()])
    )


def cmd_site_add(args: argparse.Namespace) -> int:
    if not topics.valid_id(args.site_id):
        print("lan-guard-psoc: a site id is 1-64 of A-Z a-z 0-9 _ -", file=sys.stderr)
        return EXIT_USAGE
    store = _store(args)
    password = secrets.token_urlsafe(24)
    user = bridge.site_user(args.site_id)
    try:
        site = store.add_site(args.site_id, args.name or args.site_id, user, time.time())
    except ValueError as err:
        print(f"lan-guard-psoc: {err}", file=sys.stderr)
        return EXIT_USAGE
    bridge.set_password(args.passwords, user, password)
    _write_acl(store, args.acl, args.service_user)
    config = bridge.bridge_config(
        args.site_id,
        password,
        psoc_host=args.psoc_host,
        psoc_port=args.psoc_port,
        cafile=args.site_cafile,
        local_prefix=args.local_prefix,
        tls=not args.no_tls,
    )
    if args.bridge_out:
        args.bridge_out.write_text(config, encoding="utf-8")
        args.bridge_out.chmod(0o600)
    print(config)
    print(f"# Site key (the agents' mqtt.shared_key and the integration's signing key): {site.key}")
    print(
        f"# Reload the PSOC broker to take the new account ({args.acl}, {args.passwords}): "
        "kill -HUP <its pid>, or systemctl reload mosquitto"
    )
    return EXIT_OK


def cmd_service_user(args: argparse.Namespace) -> int:
    store = _store(args)
    password = secrets.token_urlsafe(24)
    bridge.set_password(args.passwords, args.name, password)
    _write_acl(store, args.acl, args.name)
    print(f"# PSOC broker account {args.name!r}; give it to the workers and the console as")
    print(f"LAN_GUARD_PSOC_MQTT_USERNAME={args.name}")
    print(f"LAN_GUARD_PSOC_MQTT_PASSWORD={password}")
    return EXIT_OK


def cmd_user_add(args: argparse.Namespace) -> int:
    password = _env("PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    try:
        hashed = auth.hash_password(password)
        _store(args).add_user(args.username, hashed, args.role, time.time(), site_id=args.site)
    except ValueError as err:
        print(f"lan-guard-psoc: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.username}: {args.role}" + (f" of site {args.site}" if args.site else ""))
    return EXIT_OK


def serve_console(
    store: Store,
    broker: BrokerSettings,
    host: str,
    port: int,
    stop: threading.Event,
    *,
    secure_cookies: bool = True,
) -> None:
    """The console on ``host:port`` until ``stop`` is set."""
    secret = _env("SECRET") or secrets.token_urlsafe(32)  # none set: sessions end on restart
    channel = SiteChannel(broker)
    app = create_app(store, channel, ConsoleSettings(secret, secure_cookies=secure_cookies))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="psoc-console", daemon=True)
    thread.start()
    log.info("console on http://%s:%d/", host, port)
    stop.wait()
    server.should_exit = True
    thread.join(10)
    channel.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "db":
            _store(args)
            print(f"{args.db}: schema up to date")
            return EXIT_OK
        if args.command == "site":
            if args.site_command == "add":
                return cmd_site_add(args)
            for site in _store(args).sites():
                print(f"{site.site_id}\t{site.name}\t{site.mqtt_user}")
            return EXIT_OK
        if args.command == "service-user":
            return cmd_service_user(args)
        if args.command == "user":
            return cmd_user_add(args)
        if args.command == "demo":
            logging.getLogger().setLevel(logging.WARNING)
            return demo.run(
                args,
                lambda store, broker, port, stop: serve_console(
                    store, broker, "127.0.0.1", port, stop, secure_cookies=False
                ),
            )
        if args.command == "federate":
            return federation_run.run(
                args,
                lambda: _store(args).site_keys(),
                lambda: SiteChannel(_broker(args)),
            )
        if args.command == "federate-node":
            return federation_run.register_node(
                args, {site.site_id for site in _store(args).sites()}
            )
        if args.command == "federate-node-remove":
            return federation_run.unregister_nodes(args)
        if args.command == "prune":
            events, incidents = _store(args).prune(
                time.time(), args.events_days, args.incidents_days
            )
            print(f"deleted {events} events and {incidents} closed incidents")
            return EXIT_OK
        store = _store(args)
        stop = _stop_event()
        if args.command == "worker":
            Worker(store, _broker(args), client_id=args.client_id).run(stop)
            return EXIT_OK
        worker = None
        if args.command == "serve":
            worker = Worker(store, _broker(args), client_id=args.client_id).start()
        serve_console(
            store,
            _broker(args),
            args.host,
            args.port,
            stop,
            secure_cookies=not args.insecure_cookies,
        )
        if worker is not None:
            worker.stop()
        return EXIT_OK
    except federation_run.UsageError as err:
        print(f"lan-guard-psoc: {err}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as err:
        print(f"lan-guard-psoc: {err}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
