"""The release format: shard I/O, the reader training and evaluation open, verification, the
dataset card, identity-disjoint splits, the removal ledger and the release digest."""
