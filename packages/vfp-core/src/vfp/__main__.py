"""``python -m vfp`` runs the command line."""

from vfp.cli import main

main()
