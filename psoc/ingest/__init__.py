"""From the PSOC broker to the database: decode (pure), sequence gaps (pure), the worker."""
