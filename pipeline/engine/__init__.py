"""The stage engine: the runner, the stage contract, on-disk state and records, output folders
with their atomic writers, spilling, the item feed, timing, worker state and the code graph."""
