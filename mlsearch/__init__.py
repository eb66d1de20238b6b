"""mlsearch: semantic search over a machine-learning knowledge corpus."""

__version__ = "0.1.0"
