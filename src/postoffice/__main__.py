"""`python -m postoffice`."""

from postoffice.cli import main

main()
