"""Search: open a built index and run dense, LSI, BM25 or hybrid retrieval over it."""
