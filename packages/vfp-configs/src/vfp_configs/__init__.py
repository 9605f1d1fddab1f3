"""Packaged experiment and model-architecture configs for vfp (data only)."""
