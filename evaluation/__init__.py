"""Retrieval evaluation: datasets, metrics and reports."""
