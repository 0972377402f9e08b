"""`python -m orchestrator` is the same as the `stemsweep` command."""

from orchestrator.cli import main

if __name__ == "__main__":
    main()
