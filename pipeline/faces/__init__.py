"""Face detection and face geometry shared by ingest, evaluation and the apply step."""
