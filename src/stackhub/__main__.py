"""Run the CLI with ``python -m stackhub``."""

from stackhub.cli.main import main

main()
