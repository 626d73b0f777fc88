"""One typed dataclass per params.yaml section; `pipeline.config.params` assembles them."""
