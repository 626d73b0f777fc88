"""One typed dataclass per params.yaml section; `pipeline.params` assembles them."""
