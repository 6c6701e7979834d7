"""Shared test set-up: the repository root is importable (``tests.contract``, ``sensor_agent``)."""
