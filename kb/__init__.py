"""kb: a learning-and-support knowledge base with hybrid semantic search.

The core: settings, the SQLite store, the FAISS index, embeddings, chunking and search.
It imports neither `ingest` (loaders) nor `web` (Flask); the `cli` package wires the three together.
"""

__version__ = "0.1.0"
