"""``python -m cli``: the same as the ``mlsearch`` console script."""

from cli.app import main

main()
