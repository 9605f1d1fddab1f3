"""losses components."""
