"""The PiQPerfect model, its data loader, training loop and sampling pipeline."""
