"""One module per DVC stage. Each holds a pure `Stage` (items in, outputs out) and a `main`
that lists the items, hands them to the runner and reports."""
