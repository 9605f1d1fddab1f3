"""Imitation-learning components for vfp, registered through the ``vfp`` entry-point group."""
