"""The report kit: Markdown tables and lists, one offline HTML page, and matplotlib figures as embedded PNGs.

The evaluation, drift and fine-tuning reports are built from these pieces, so they look alike and each opens
offline as one file (no CDN, no script; plots are ``data:`` URIs). The module imports nothing of ours and no
plotting library: it takes matplotlib figures that the caller drew, and draws only on axes it is given.

Example:
    >>> page = html_page("Report", [html_table(["method", "nDCG@10"], [["dense", Cell("0.512", "num")]])])
    >>> page.startswith("<!DOCTYPE html>")
    True
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIN_COLOR, LOSS_COLOR, TIE_COLOR = "#55A868", "#C44E52", "#999999"
TIE_TOLERANCE = 1e-12

BASE_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;
color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}td.best{font-weight:bold}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;font-size:.9em}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}figure{margin:1em 0}img{max-width:100%}
figcaption{font-size:.85em;color:#555}code,pre{background:#f4f4f4}pre{padding:.6em}
"""


# -- plots ---------------------------------------------------------------------------------------------------
def figure_png(figure: Figure, dpi: int = 110) -> bytes:
    """A matplotlib figure as PNG bytes (laid out tightly first).

    Args:
        figure: A figure drawn with matplotlib's object API (``matplotlib.figure.Figure``; no pyplot state).
        dpi: Resolution.
    """
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def win_loss_bars(axes: Axes, differences: Iterable[float]) -> tuple[int, int, int]:
    """Draw per-query differences ``a − b`` as sorted bars: wins green above zero, losses red below, ties grey.

    Args:
        axes: Where to draw (y from −1.05 to 1.05, a zero line, a light grid).
        differences: One difference per query.

    Returns:
        The number of wins, losses and ties.
    """
    diff = sorted(differences, reverse=True)
    wins = sum(d > TIE_TOLERANCE for d in diff)
    losses = sum(d < -TIE_TOLERANCE for d in diff)
    colors = [WIN_COLOR if d > TIE_TOLERANCE else LOSS_COLOR if d < -TIE_TOLERANCE else TIE_COLOR for d in diff]
    axes.bar(range(len(diff)), diff, width=1.0, color=colors)
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xlim(-0.5, max(len(diff), 1) - 0.5)
    axes.set_ylim(-1.05, 1.05)
    axes.grid(axis="y", alpha=0.3)
    return wins, losses, len(diff) - wins - losses


# -- Markdown ------------------------------------------------------------------------------------------------
def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> str:
    """A GitHub-flavoured Markdown table; ``|`` inside a cell is escaped.

    Args:
        header: The column names.
        rows: The cells, as text.
        align: One letter per column, ``l`` or ``r`` (columns past its end are left-aligned).

    Example:
        >>> print(markdown_table(["a", "b"], [["x", "1"]], align="lr"))
        | a | b |
        |---|---:|
        | x | 1 |
    """
    rule = "".join("---:|" if align[i:i + 1] == "r" else "---|" for i in range(len(header)))
    lines = [_markdown_row(header), "|" + rule]
    lines += [_markdown_row(row) for row in rows]
    return "\n".join(lines)


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def markdown_facts(facts: Iterable[tuple[str, str]]) -> list[str]:
    """The report's facts (name, value) as Markdown list lines, names in bold."""
    return [f"- **{name}**: {value}" for name, value in facts]


def markdown_image(caption: str, link: str) -> str:
    """A Markdown image line."""
    return f"![{caption}]({link})"


# -- HTML ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """A table cell with CSS classes (``num`` right-aligns a number, ``best`` bolds it) or an inline style."""

    text: str
    classes: str = ""
    style: str = ""

    def html(self) -> str:
        """The ``<td>`` element, its text escaped."""
        attributes = (f' class="{self.classes}"' if self.classes else "") + (
            f' style="{html.escape(self.style)}"' if self.style else "")
        return f"<td{attributes}>{html.escape(self.text)}</td>"


def html_table(header: Sequence[str], rows: Iterable[Sequence[str | Cell]]) -> str:
    """An HTML table; plain strings become plain cells, every text is escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join((c if isinstance(c, Cell) else Cell(c)).html() for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def html_facts(facts: Iterable[tuple[str, str]]) -> str:
    """The report's facts (name, value) as a two-column definition list."""
    return '<dl class="facts">' + "".join(
        f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts) + "</dl>"


def html_list(items: Iterable[str], markup: bool = False) -> str:
    """A bulleted list; with ``markup``, ``**bold**`` and ```code``` in the items become HTML."""
    render = inline_markdown if markup else html.escape
    return "<ul>" + "".join(f"<li>{render(item)}</li>" for item in items) + "</ul>"


def png_data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:`` URI, for an image that needs no other file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def html_figure(png: bytes, caption: str, show_caption: bool = True) -> str:
    """An embedded plot: ``<figure>`` with the image inline (alt text ``caption``) and its caption below."""
    below = f"<figcaption>{html.escape(caption)}</figcaption>" if show_caption else ""
    return f'<figure><img alt="{html.escape(caption)}" src="{png_data_uri(png)}">{below}</figure>'


def inline_markdown(text: str) -> str:
    """Escape text for HTML, turning Markdown's ``**bold**`` and ```code``` into ``<b>`` and ``<code>``."""
    pieces = html.escape(text).split("**")
    bolded = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(pieces))
    pieces = bolded.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))


def html_page(title: str, body: Iterable[str], css: str = "") -> str:
    """One self-contained HTML page: inline CSS (:data:`BASE_CSS` and ``css``), no script, no external link.

    Args:
        title: The page title (escaped).
        body: HTML fragments, one per line of the page's body.
        css: Extra style rules of this report.
    """
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{BASE_CSS}{css}</style></head><body>",
        *body, "</body></html>\n",
    ])
