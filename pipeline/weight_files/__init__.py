"""The paper models' weight files: what a published folder must hold, how its tensors are read
and checked, before any backend builds a network from them."""
