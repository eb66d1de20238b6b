"""Small PDF, HTML and notebook files made on the spot for loader, update and API tests."""

from __future__ import annotations

import nbformat


def _pdf_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A valid PDF with one page per entry, each line drawn as text (an empty list: a page with no text layer)."""
    objects: list[bytes] = []
    n_pages = len(pages)
    font_id = 3 + 2 * n_pages
    info_id = font_id + 1
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, lines in enumerate(pages):
        content_id = 4 + 2 * i
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        ops = "".join(
            f"BT /F1 11 Tf 72 {720 - 16 * j} Td ({_pdf_string(line)}) Tj ET\n" for j, line in enumerate(lines)
        )
        stream = ops.encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    objects.append(f"<< /Title ({_pdf_string(title or '')}) >>".encode())
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    trailer = f"<< /Size {len(objects) + 1} /Root 1 0 R" + (f" /Info {info_id} 0 R" if title else "") + " >>"
    out += f"trailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def make_encrypted_pdf() -> bytes:
    """A PDF protected with a user password."""
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([["secret text about kernels"]]))))
    writer.encrypt(user_password="pw", owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


PDF_PAGES = [
    ["Attention is all you need.", "The transformer relies entirely on self attention mechanisms."],
    [],
    ["Positional encodings use sine and cosine functions of different frequencies.",
     "Multi head attention runs several attention layers in parallel."],
]

HTML_PAGE = """<!DOCTYPE html>
<html><head><title>Gradient clipping explained</title>
<link rel="canonical" href="https://example.org/gradient-clipping">
<script>var tracking = "zzzscriptword";</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/about">zzznavword About us</a></nav>
<article>
<h1>Gradient clipping explained</h1>
<p>Gradient clipping keeps the norm of the gradient below a threshold, so that training of recurrent networks
stays stable when a batch produces an exploding gradient.</p>
<h2>In PyTorch</h2>
<p>Call <code>clip_grad_norm_</code> after the backward pass and before the optimizer step; a maximum norm of one
is a common choice for transformers and long short-term memory networks.</p>
</article>
<footer>Copyright 2025 zzzfooterword. All rights reserved.</footer>
</body></html>
"""


def make_notebook(cells: list[tuple[str, str]] | None = None, language: str = "python") -> bytes:
    """A valid notebook (as bytes) with Markdown (``"md"``) and code (``"code"``) cells and one output."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": language, "display_name": language, "language": language}
    notebook.metadata["language_info"] = {"name": language}
    for kind, source in cells or NOTEBOOK_CELLS:
        if kind == "md":
            notebook.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            cell = nbformat.v4.new_code_cell(source)
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="zzzoutputword 0.93\n")]
            notebook.cells.append(cell)
    return nbformat.writes(notebook).encode()


NOTEBOOK_CELLS = [
    ("md", "# K-means clustering\n\nK-means assigns every point to the nearest centroid and moves centroids."),
    ("code", "from sklearn.cluster import KMeans\nmodel = KMeans(n_clusters=8).fit(features)"),
    ("md", "## Choosing k\n\nThe elbow method plots inertia against the number of clusters."),
    ("code", "inertias = [KMeans(n_clusters=k).fit(features).inertia_ for k in range(1, 12)]"),
]
