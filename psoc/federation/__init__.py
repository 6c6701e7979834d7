"""Federated learning at the PSOC: the Flower ServerApp, its rounds, the global model's way home.

The provider runs a Flower SuperLink; each consenting site's agent node runs a SuperNode with
the project's ClientApp (``sensor_agent.federation``). ``lan-guard-psoc federate`` submits the
ServerApp (:mod:`.server_app`: FedAvg over at least ``min-sites`` sites, optionally with Flower's
differential privacy and its privacy accountant), which stores each round's global model
(:mod:`.rounds`); the command then publishes the newest one, signed with each site's key and
retained, to the sites that took part (:mod:`.publish`). Only :mod:`.server_app` imports Flower:
the rest runs in the PSOC's own environment.
"""
