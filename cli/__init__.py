"""The ``mlsearch`` command line: Typer commands on top of every other package (nothing imports this one)."""
