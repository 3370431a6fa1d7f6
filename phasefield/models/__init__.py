"""One module per scenario family; each exposes ``build(config) -> Simulation``."""
