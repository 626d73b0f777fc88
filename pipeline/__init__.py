"""Shared machinery of PiQPerfect: params, the Ray stage runner, manifests and shard I/O."""
