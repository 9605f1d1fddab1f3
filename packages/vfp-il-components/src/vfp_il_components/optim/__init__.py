"""optim components."""
