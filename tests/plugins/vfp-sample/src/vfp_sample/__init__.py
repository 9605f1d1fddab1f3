"""A third-party vfp plugin as someone outside the project would write it."""
