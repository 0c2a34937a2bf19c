"""`python -m paperzoo ...` and `torchrun ... -m paperzoo ...` enter here."""

from paperzoo.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
