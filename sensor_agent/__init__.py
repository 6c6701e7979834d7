"""LAN Guard sensor agent: sees LAN reconnaissance before an attack and publishes graded events."""

__version__ = "0.1.0"
