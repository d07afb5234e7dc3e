"""`python -m grec.cli` (torchrun launches training this way)."""

from grec.cli import main


main()
