"""A real ECHONET Lite controller (pychonet) for the lab: discover, then switch an appliance on.

Run inside a lab namespace: ``python -m tests.lab.echonet_client LOCAL_IP TARGET_IP``.
It discovers the LAN (a multicast Get of the instance lists, as Home Assistant's ECHONET Lite
integration does), reads the target's identification and property maps, and sends one Set
(operation status: on) to its air conditioner. Bounded: every step times out; prints what it
found as JSON and exits 0 when the Set was answered.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from pychonet import ECHONETAPIClient, HomeAirConditioner  # type: ignore[import-untyped]
from pychonet.lib.udpserver import UDPServer  # type: ignore[import-untyped]


async def control(local_ip: str, target: str, *, discover: bool) -> dict[str, Any]:
    server = UDPServer(local_ip=local_ip)
    server.run("0.0.0.0", 3610, loop=asyncio.get_running_loop())
    api = ECHONETAPIClient(server)
    found: list[str] = []

    async def on_new_node(host: str) -> None:
        found.append(host)

    api.configure(message_timeout=20, logger=lambda *args: None, discover_callback=on_new_node)
    result: dict[str, Any] = {"found": found}
    try:
        if discover:
            await api.discover()  # multicast: every node answers with its instance list
            for _ in range(30):
                if target in found:
                    break
                await asyncio.sleep(0.1)
        await asyncio.wait_for(api.discover(target), 5)
        await asyncio.wait_for(api.getAllPropertyMaps(target, 0x01, 0x30, 0x01), 5)
        air_conditioner = HomeAirConditioner(target, api)
        result["set"] = bool(await asyncio.wait_for(air_conditioner.on(), 5))
    finally:
        server.close()
    return result


def main() -> int:
    local_ip, target = sys.argv[1], sys.argv[2]
    discover = "--no-discover" not in sys.argv
    result = asyncio.run(control(local_ip, target, discover=discover))
    print(json.dumps(result))
    return 0 if result.get("set") else 1


if __name__ == "__main__":
    sys.exit(main())
