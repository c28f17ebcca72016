"""One self-contained HTML file: the summary, the tables and every figure as an inline PNG.

No scripts, no external resources: the file opens the same anywhere, offline.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from matplotlib.figure import Figure
from rduflow.compiler.loading import write_atomically
from rduflow.inference.result import report_dict, summary
from rduflow.inference.run import Run

from .figures import ALL

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; } th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
"""


def render_html(run: Run) -> str:
    d = report_dict(run)
    title = f"rduflow: {d['model']} on {d['sockets']} x {d['arch']}"
    parts = [f"<pre id=\"summary\">{_e(summary(run))}</pre>",
             "<h2>Headline figures</h2>", table(["metric", "value"], _headline(d), "headline")]
    by_section = list(d["breakdown"]["by_section_ms"].items())
    total = sum(v for _, v in by_section) or 1.0
    parts += ["<h2>Time by section</h2>",
              table(["section", "ms", "share"], [(k, f"{v:.3f}", f"{100 * v / total:.1f}%") for k, v in by_section],
                     "sections"),
              "<h2>Time by operator kind</h2>",
              table(["kind", "ms", "share"],
                     [(k, f"{v:.3f}", f"{100 * v / total:.1f}%") for k, v in d["breakdown"]["by_kind_ms"].items()],
                     "kinds")]
    for i, (heading, make) in enumerate(ALL):
        parts += [f"<h2>{_e(heading)}</h2>", image(make(run), f"figure-{i}", heading)]
    return page(title, parts)


def page(title: str, body: list[str]) -> str:
    """A whole document: the title as heading, then ``body`` (HTML fragments), with the shared style."""
    return "\n".join([f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>",
                      f"<style>{_STYLE}</style></head><body>", f"<h1 id=\"title\">{_e(title)}</h1>",
                      *body, "</body></html>\n"])


def image(fig: Figure, ident: str, alt: str) -> str:
    """``fig`` as an ``<img>`` with the PNG inline (a data URI), so the page needs no other file."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"<img id=\"{_e(ident)}\" alt=\"{_e(alt)}\" src=\"data:image/png;base64,{data}\">"


def write_html(run: Run, path: str | Path) -> None:
    """Write the report through a temporary file and a rename (never a half-written report)."""
    text = render_html(run)
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def _headline(d: dict) -> list[tuple[str, str]]:
    rows = [("TTFT", f"{d['ttft_ms']:.3f} ms"), ("end to end", f"{d['e2e_ms']:.3f} ms"),
            ("throughput", f"{d['throughput_tokens_per_s']:.1f} tokens/s")]
    if d["itl_ms"]:
        i = d["itl_ms"]
        rows += [("ITL mean / p50 / p90 / p99", f"{i['mean']:.3f} / {i['p50']:.3f} / {i['p90']:.3f} / {i['p99']:.3f} ms"),
                 ("tokens/s per user", f"{d['tokens_per_s_per_user']:.1f}")]
    for tier, b in d["bandwidth"].items():
        rows.append((f"{tier} bandwidth per {d['device']}",
                     f"{b['achieved_gb_s']:.0f} GB/s ({100 * b['fraction_of_peak']:.1f}% of {b['peak_gb_s']:.0f})"))
    for key, v in d["utilization"].items():
        rows.append((f"{key} busy", f"{100 * v:.1f}%"))
    pb = d["bounds"]["prefill"]
    rows.append(("prefill rooflines (compute / memory)", f"{pb['compute_ms']:.3f} / {pb['memory_ms']:.3f} ms"))
    return rows


def table(head: list[str], rows, ident: str) -> str:
    out = [f"<table id=\"{ident}\"><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{_e(str(c))}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _e(s: str) -> str:
    return html.escape(s, quote=True)
