"""Literature evidence: storage, ingestion and hybrid retrieval of evidence cards and abstracts.

The public entry points are re-exported lazily by their modules; importing this package does no I/O.
"""
