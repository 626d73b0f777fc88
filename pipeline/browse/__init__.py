"""`piq browse`: a local web page over released shards (pipeline/browse/server.py)."""
