"""`python -m aggregator` runs the CLI."""

from aggregator.cli import main

main()
