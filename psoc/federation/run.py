"""``lan-guard-psoc federate``: a federated run on the provider's SuperLink, then the model home.

The provider runs a Flower SuperLink as a service (or ``--start-superlink`` starts one for the
run, for demos and tests, on the address given); the command submits the ServerApp with
``flwr run``, waits for it within ``--timeout``, and publishes the newest global model the run
stored to the sites that trained it (:mod:`.publish`), signed with each site's key.

``lan-guard-psoc federate-node`` registers a site's SuperNode key with the SuperLink: only
registered nodes may join a round (SuperNode authentication, always on).
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from psoc.federation import publish
from psoc.federation.flower import (
    FlowerEnv,
    SuperLinkTls,
    forget_node,
    record_node,
    registered_nodes,
)
from psoc.federation.rounds import RoundStore

log = logging.getLogger(__name__)


class UsageError(ValueError):
    """The command's arguments do not fit together (the message says why)."""


def add_superlink_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the SuperLink is and how to reach it (``federate`` and ``federate-node``)."""
    parser.add_argument(
        "--superlink",
        default="127.0.0.1:9092",
        help="the SuperLink's HTTP API, host:port (default 127.0.0.1:9092)",
    )
    parser.add_argument(
        "--start-superlink",
        action="store_true",
        help="start a SuperLink on that address for this command (demos, tests): "
        "TLS with --superlink-cert/--superlink-key, its state in --flower-home",
    )
    parser.add_argument(
        "--superlink-ca", type=Path, help="the SuperLink's CA (default: the system's CAs)"
    )
    parser.add_argument("--superlink-cert", type=Path, help="with --start-superlink")
    parser.add_argument("--superlink-key", type=Path, help="with --start-superlink")
    parser.add_argument(
        "--flower-bin",
        type=Path,
        default=Path(sys.executable).parent,
        help="folder of Flower's executables (default: this Python's)",
    )
    parser.add_argument(
        "--flower-home",
        type=Path,
        default=Path("flower"),
        help="Flower's state and the app folder (default ./flower)",
    )


def add_node_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site_id", help="the site whose agent node this is")
    parser.add_argument(
        "public_key",
        type=Path,
        help="the node's public key (lan-guard-agent federate --node-key prints it)",
    )
    add_superlink_arguments(parser)


def add_remove_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site_id", help="the site whose agent nodes leave the federation")
    parser.add_argument(
        "--node-id",
        type=int,
        help="only this node of the site (after registering its new key: key rotation)",
    )
    add_superlink_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--initial-model",
        type=Path,
        required=True,
        help="a model file of the integration: its feature version, prior and "
        "cut-offs (a fresh model's stored form, or a global model)",
    )
    add_superlink_arguments(parser)
    parser.add_argument("--rounds-db", type=Path, default=Path("federation.db"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--min-sites", type=int, default=3, help="no round with fewer sites (default 3)"
    )
    parser.add_argument("--round-timeout", type=float, default=300.0)
    parser.add_argument("--timeout", type=float, default=3600.0, help="the whole run (s)")
    parser.add_argument(
        "--no-evaluate", action="store_true", help="skip the sites' scoring of each round's model"
    )
    parser.add_argument(
        "--dp",
        action="store_true",
        help="differential privacy: clip each site's update, noise the average",
    )
    parser.add_argument("--noise-multiplier", type=float, default=1.0)
    parser.add_argument(
        "--clipping-norm",
        type=float,
        default=1.0,
        help="with --dp or --secure-aggregation: the longest change of the weights a site's "
        "update may make (default 1.0)",
    )
    parser.add_argument("--target-delta", type=float, default=1e-5)
    parser.add_argument(
        "--max-epsilon",
        type=float,
        default=0.0,
        help="refuse rounds past this budget (0: no limit)",
    )
    parser.add_argument("--population", type=int, help="sites in the federation (default: min)")
    parser.add_argument(
        "--secure-aggregation",
        action="store_true",
        help="SecAgg+: the PSOC learns only the sum of the sites' updates (each site clips "
        "its own change to --clipping-norm; every site weighs the same; at least 3 sites)",
    )
    parser.add_argument(
        "--no-publish", action="store_true", help="store the rounds only; send nothing to sites"
    )


def _wait_listening(process: subprocess.Popen[bytes], address: str, timeout: float) -> None:
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the SuperLink exited with {process.returncode}")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the SuperLink did not listen on {address} within {timeout:g} s")


def _env(args: argparse.Namespace) -> FlowerEnv:
    return FlowerEnv(
        bin_dir=args.flower_bin,
        home=args.flower_home.absolute(),
        superlink=args.superlink,
        ca_certfile=args.superlink_ca,
    )


def _superlink_tls(args: argparse.Namespace) -> SuperLinkTls | None:
    """The TLS files of a SuperLink to start, or None to use the provider's running one."""
    if not args.start_superlink:
        return None
    if not (args.superlink_cert and args.superlink_key and args.superlink_ca):
        # Flower authenticates SuperNodes only over TLS.
        raise UsageError(
            "--start-superlink needs --superlink-cert, --superlink-key and --superlink-ca"
        )
    return SuperLinkTls(args.superlink_cert, args.superlink_key, args.superlink_ca)


def _start_superlink(
    args: argparse.Namespace, env: FlowerEnv, tls: SuperLinkTls | None
) -> subprocess.Popen[bytes] | None:
    if tls is None:
        return None
    superlink = subprocess.Popen(
        env.superlink_command(tls),
        env=env.environ(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(superlink, args.superlink, 30.0)
    except RuntimeError:
        _stop(superlink)
        raise
    return superlink


def _stop(superlink: subprocess.Popen[bytes] | None) -> None:
    if superlink is not None:
        superlink.terminate()
        superlink.wait(10)


def register_node(args: argparse.Namespace, known_sites: set[str]) -> int:
    """``federate-node``: the SuperLink admits the site's node from now on."""
    tls = _superlink_tls(args)
    if args.site_id not in known_sites:
        log.error("no site %s: add it first (lan-guard-psoc site add)", args.site_id)
        return 2
    env = _env(args)
    env.prepare()
    superlink = _start_superlink(args, env, tls)
    try:
        done = subprocess.run(
            env.register_command(args.public_key.absolute(), args.site_id),
            env=env.environ(),
            timeout=60,
            check=False,
            capture_output=True,
        )
    finally:
        _stop(superlink)
    registered, answer = _flower_answer(done)
    if not registered:
        why = _why(done, answer)
        log.error("the SuperLink did not register the node of site %s: %s", args.site_id, why)
        return 1
    record_node(env.nodes, int(answer["node-id"]), args.site_id)
    print(f"node {answer['node-id']} registered for site {args.site_id}")
    return 0


def _flower_answer(done: subprocess.CompletedProcess[bytes]) -> tuple[bool, dict[str, Any]]:
    """Whether Flower's CLI did it, and its JSON answer (it exits 0 either way)."""
    try:
        answer = json.loads(done.stdout)
        return bool(answer["success"]) and done.returncode == 0, answer
    except (ValueError, KeyError, TypeError):
        return False, {}


def _why(done: subprocess.CompletedProcess[bytes], answer: dict[str, Any]) -> str:
    return str(answer.get("error-message") or done.stderr.decode(errors="replace")[-500:])


def unregister_nodes(args: argparse.Namespace) -> int:
    """``federate-node-remove``: the SuperLink refuses the site's nodes (or one of them) from
    now on, and the ServerApp credits them to nobody."""
    tls = _superlink_tls(args)
    env = _env(args)
    env.prepare()
    nodes = [
        node
        for node, site in registered_nodes(env.nodes).items()
        if site == args.site_id and args.node_id in (None, node)
    ]
    if not nodes:
        which = "no node" if args.node_id is None else f"no node {args.node_id}"
        log.error("%s of site %s is registered", which, args.site_id)
        return 2
    superlink = _start_superlink(args, env, tls)
    failed = 0
    try:
        for node in nodes:
            done = subprocess.run(
                env.unregister_command(node),
                env=env.environ(),
                timeout=60,
                check=False,
                capture_output=True,
            )
            removed, answer = _flower_answer(done)
            if not removed:
                log.error("the SuperLink did not unregister node %d: %s", node, _why(done, answer))
                failed += 1
                continue
            forget_node(env.nodes, node)
            print(f"node {node} of site {args.site_id} unregistered")
    finally:
        _stop(superlink)
    return 1 if failed else 0


def run(
    args: argparse.Namespace,
    sites: Callable[[], dict[str, bytes]],
    channel: Callable[[], publish.Sender],
) -> int:
    """The command; ``sites`` gives each site's key, ``channel`` the site channel."""
    if args.secure_aggregation and args.min_sites < 3:
        # With two, each site could take its own update from the sum and read the other's.
        raise UsageError("--secure-aggregation needs --min-sites of at least 3")
    tls = _superlink_tls(args)
    env = _env(args)
    app = env.prepare()
    rounds = RoundStore(args.rounds_db)
    before = rounds.latest()
    superlink = _start_superlink(args, env, tls)
    values: dict[str, str | int | float | bool] = {
        "initial-model": str(args.initial_model.absolute()),
        "nodes": str(env.nodes),
        "rounds-db": str(args.rounds_db.absolute()),
        "num-rounds": args.rounds,
        "min-sites": args.min_sites,
        "round-timeout": args.round_timeout,
        "evaluate": not args.no_evaluate,
        "dp": args.dp,
        "noise-multiplier": args.noise_multiplier,
        "clipping-norm": args.clipping_norm,
        "target-delta": args.target_delta,
        "max-epsilon": args.max_epsilon,
        "population": args.population or args.min_sites,
        "secure-aggregation": args.secure_aggregation,
    }
    try:
        done = subprocess.run(
            env.run_command(app, values), env=env.environ(), timeout=args.timeout, check=False
        )
    except subprocess.TimeoutExpired:
        log.error("the federated run did not finish within %g s", args.timeout)
        return 1
    finally:
        _stop(superlink)
    latest = rounds.latest()
    rounds.close()
    if done.returncode != 0 or latest is None or (before and latest.version == before.version):
        log.error("the federated run stored no global model (flwr run exited %d)", done.returncode)
        return 1
    print(
        f"global model version {latest.version}: round {latest.round} of run "
        f"{latest.run_id}, {len(latest.sites)} sites, privacy {latest.privacy}"
    )
    if args.no_publish:
        return 0
    sender = channel()
    try:
        sent = publish.publish(latest, sites(), sender)
    finally:
        sender.close()
    print(f"sent to {len(sent)} site agents: " + ", ".join(f"{s}/{a}" for s, a in sent))
    return 0
