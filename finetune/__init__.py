"""Unsupervised fine-tuning of the embedding model, and the gate that promotes it."""
