"""``python -m archiver``: the same as the ``archiver`` console script."""

from .cli import main

if __name__ == "__main__":
    main()
