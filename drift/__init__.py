"""Drift monitoring of the queries the service receives."""
