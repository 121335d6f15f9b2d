"""`python -m debias` runs the command line (also what torchrun launches)."""

from debias.cli import main

main()
