"""Indexing: load a corpus, clean and chunk it, embed it, and write the index backends."""
