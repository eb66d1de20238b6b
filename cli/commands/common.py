"""What every CLI command shares: error handling, settings overrides, model loading, JSON output."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from indexing.backends.configs import encoder_config
from indexing.embedding import Encoder, follow_index, open_encoder
from indexing.layout import current_version_dir
from indexing.manifest import Manifest
from mlsearch.configs import EncoderConfig
from mlsearch.errors import MlsearchError
from mlsearch.settings import Settings

if TYPE_CHECKING:
    from evaluation.indexes import PreparedIndex

F = TypeVar("F", bound=Callable[..., Any])


def cli_errors(fn: F) -> F:
    """Turn our own errors (and invalid settings) into one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MlsearchError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except (ValueError, FileExistsError, PermissionError) as exc:
            typer.echo(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def make_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the CLI options that were given (not None) on top.

    The backend options given are checked against their backends' configs here, before anything is loaded.
    """
    from pydantic import ValidationError

    from indexing.backends.configs import backend_configs

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ValueError(f"invalid setting {where}: {first['msg']}") from None
    backend_configs(settings)
    return settings


def get_encoder(settings: Settings, model: str | None = None, threads: int | None = None) -> Encoder:
    """Load the embedding model (tests replace this function with a fake encoder).

    ``threads`` overrides the settings' OpenVINO / ONNX Runtime threads. The encoder backend and int8 flag the
    settings leave unset are the current index's (see :func:`chosen_encoder`).
    """
    return open_encoder(model or settings.model, chosen_encoder(settings, threads))


def chosen_encoder(settings: Settings, threads: int | None = None) -> EncoderConfig:
    """How the settings run the model, with the backend and int8 flag they leave unset taken from the index in
    ``settings.index_dir`` when there is one (else the defaults): see :func:`indexing.embedding.follow_index`."""
    try:
        index = Manifest.load(current_version_dir(settings.index_dir)).model
    except MlsearchError:  # no index yet (or none readable): the defaults
        index = None
    return follow_index(encoder_config(settings, threads), index)


def model_loader(settings: Settings) -> Callable[[str], Encoder]:
    """A model loader for :meth:`search.searcher.Searcher.open` that goes through :func:`get_encoder`."""
    return lambda name: get_encoder(settings, name)


def dataset_index(
    settings: Settings, dataset: str, backend: str, model: str | None, say: Callable[[str], None]
) -> PreparedIndex:
    """The evaluation index of a dataset, found or built as ``mlsearch eval`` would (with LSI and BM25), and the
    corpus folder it holds (for a BEIR set, the Markdown copy kept in the cache). Judgements are never read."""
    from evaluation.datasets import load_dataset
    from evaluation.indexes import needed_backends, prepare_index
    from indexing.backends.configs import build_config
    from mlsearch.catalog import METHOD_NAMES

    data = load_dataset(dataset, corpus_dir=settings.corpus_dir)
    encoder = get_encoder(settings, model)
    backends = needed_backends(METHOD_NAMES, backend)
    return prepare_index(data, build_config(settings), encoder, backends, settings.resolved_eval_cache_dir,
                         show_progress=True, progress=say)


def print_json(data: Any) -> None:
    """Print JSON to stdout."""
    typer.echo(json.dumps(data, indent=2, default=str))


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr: warnings by default, info with ``--verbose``."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
