"""`python -m analyzer` runs the same CLI as the `callaudit` command."""

from analyzer.cli import main

main()
