"""The report kit: Markdown tables, the offline HTML page, embedded PNG plots."""

from __future__ import annotations

import base64
import re

from matplotlib.figure import Figure

from mlsearch.reporting import (
    Cell,
    figure_png,
    html_facts,
    html_figure,
    html_list,
    html_page,
    html_table,
    inline_markdown,
    markdown_facts,
    markdown_table,
    win_loss_bars,
)


def test_markdown_table_aligns_columns_and_escapes_pipes() -> None:
    table = markdown_table(["query", "score"], [["a | b", "0.5"], ["c", "1.0"]], align="lr")
    assert table.splitlines() == ["| query | score |", "|---|---:|", "| a \\| b | 0.5 |", "| c | 1.0 |"]
    assert markdown_table(["x", "y", "z"], [], align="r").splitlines()[1] == "|---:|---|---|"


def test_markdown_facts_bold_the_names() -> None:
    assert markdown_facts([("Model", "m"), ("Date", "today")]) == ["- **Model**: m", "- **Date**: today"]


def test_html_table_escapes_text_and_keeps_cell_classes_and_styles() -> None:
    table = html_table(["a<b", "n"], [["<script>", Cell("1.0", "num best")], [Cell("ok", style="color:red"), "2"]])
    assert "<th>a&lt;b</th>" in table and "<td>&lt;script&gt;</td>" in table
    assert '<td class="num best">1.0</td>' in table and '<td style="color:red">ok</td>' in table
    assert table.count("<tr>") == 3


def test_a_page_is_one_offline_file_with_its_plots_inline() -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    page = html_page("A & B", [html_facts([("k", "v<")]), html_list(["**bold** and `code`"], markup=True),
                               html_figure(png, "Recall <at> k")], css="h1{color:red}")
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</body></html>\n")
    assert "<title>A &amp; B</title>" in page and "h1{color:red}" in page
    assert "<script" not in page and "<link" not in page and "http" not in page
    assert "<dd>v&lt;</dd>" in page and "<li><b>bold</b> and <code>code</code></li>" in page
    (source,) = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert base64.b64decode(source) == png
    assert "<figcaption>Recall &lt;at&gt; k</figcaption>" in page
    assert "figcaption" not in html_figure(png, "no caption", show_caption=False)


def test_inline_markdown_escapes_before_marking_up() -> None:
    assert inline_markdown("**<x>** `a&b`") == "<b>&lt;x&gt;</b> <code>a&amp;b</code>"


def test_win_loss_bars_count_and_sort_the_differences() -> None:
    figure = Figure(figsize=(4, 2))
    axes = figure.add_subplot()
    assert win_loss_bars(axes, [0.2, -0.1, 0.0, 0.5, 1e-15]) == (2, 1, 2)
    heights = [patch.get_height() for patch in axes.patches]
    assert heights == sorted(heights, reverse=True) and len(heights) == 5
    assert figure_png(figure, dpi=50).startswith(b"\x89PNG")
