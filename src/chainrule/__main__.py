"""``python -m chainrule`` runs the command line."""

from .cli import main

main()
