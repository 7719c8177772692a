"""`python -m aggregator` runs the CLI."""

from aggregator.cli import main

# Guarded: a feature worker process (aggregator.parallel, started by "spawn") imports the
# main module again, and must not run the CLI a second time.
if __name__ == "__main__":
    main()
