"""Index backends: one file each, behind the Protocols of :mod:`indexing.backends.base`."""
