"""Model building blocks (kind ``model``): light ``specs`` plus one heavy module per family."""
