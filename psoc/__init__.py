"""LAN Guard PSOC: the service provider's security operations center.

Sites bridge their agents' MQTT topics to the PSOC's broker under ``sites/<site_id>/``;
workers (``psoc.ingest``) verify and store them in one database (``psoc.db``), and operators
act from a web console (``psoc.console``). See the README's PSOC section.
"""

__version__ = "0.1.0"
