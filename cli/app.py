"""The ``mlsearch`` command line (Typer). Each command group lives in ``cli/commands/``."""

from __future__ import annotations

import typer

from cli.commands import drift as drift_commands
from cli.commands import eval as eval_commands
from cli.commands import finetune as finetune_commands
from cli.commands import index as index_commands
from cli.commands import rerank as rerank_commands
from cli.commands import search as search_commands
from cli.commands import serve as serve_commands
from cli.commands import tune as tune_commands
from cli.commands.common import setup_logging

app = typer.Typer(
    help="mlsearch: semantic search over a machine-learning knowledge corpus.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(index_commands.app, name="index")
app.command("search")(search_commands.search)
app.command("eval")(eval_commands.run)
app.command("finetune")(finetune_commands.finetune)
app.command("tune")(tune_commands.tune)
app.command("rerank-train")(rerank_commands.rerank_train)
app.command("serve")(serve_commands.serve)
app.add_typer(drift_commands.app, name="drift")


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details.")) -> None:
    setup_logging(verbose)


def main() -> None:
    """Entry point of the ``mlsearch`` console script."""
    app()


if __name__ == "__main__":
    main()
