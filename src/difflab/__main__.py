"""``python -m difflab``: the same command line as the ``difflab`` script."""

from difflab.cli import main

if __name__ == "__main__":
    main()
