"""``python -m questfoundry`` runs the CLI."""

from questfoundry.cli import main

main()
