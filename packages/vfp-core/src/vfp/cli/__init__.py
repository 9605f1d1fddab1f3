"""The ``vfp`` command line. Built from small command-group modules; imports no torch at start-up."""

from vfp.cli._main import main

__all__ = ["main"]
