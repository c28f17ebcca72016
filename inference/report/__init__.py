"""Reports of LLM runs: a self-contained HTML file with matplotlib figures (``write_html``)."""

from .html import render_html, write_html

__all__ = ["render_html", "write_html"]
