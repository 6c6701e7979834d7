"""The site channel to the owner's provider and its operations center (PSOC): what the owner
allows (``options``), what is decided (``channel``, pure) and the I/O (``link``)."""
