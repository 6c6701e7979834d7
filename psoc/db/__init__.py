"""Storage: tables (``models``), engines and migrations (``engine``)."""
