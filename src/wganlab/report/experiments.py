"""The experiments report: one self-contained page from experiment folders (``result.json``
and the plots each experiment saved)."""

from __future__ import annotations

import html
import json
from pathlib import Path

from wganlab.report.html import image_tag, page_head
from wganlab.util.files import atomic_write_text

RESULT = "result.json"
REPORT = "report.html"


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and len(value) > 12:
        return html.escape(json.dumps(value[:12])[:-1] + ", ...]")
    return html.escape(json.dumps(value) if isinstance(value, (list, dict)) else str(value))


def section_html(outcome: dict, folder: Path) -> str:
    """One report section: the claim, PASSED/FAILED, the checks and the plots inline."""
    verdict = "PASSED" if outcome["passed"] else "FAILED"
    colour = "#1a7f37" if outcome["passed"] else "#c62828"
    rows = "".join(
        f"<tr><td>{'pass' if c['passed'] else '<b>FAIL</b>'}</td><td>{html.escape(c['name'])}</td>"
        f"<td>{_format(c['value'])}</td><td>{html.escape(c['bar'])}</td></tr>" for c in outcome["checks"])
    parts = [f"<section id='{html.escape(outcome['name'])}'>",
             f"<h2>{html.escape(outcome['name'])}: {html.escape(outcome['title'])}</h2>",
             f"<p><b>Claim.</b> {html.escape(outcome['claim'])}</p>",
             f"<p><b>Protocol.</b> {html.escape(outcome.get('protocol', 'not stated'))}</p>",
             f"<p><b>Scaled down.</b> {html.escape(outcome.get('scaled', 'not stated'))}</p>",
             f"<p class='verdict' style='color:{colour}'><b>{verdict}</b>"
             f"{' (quick version)' if outcome.get('quick') else ''}</p>",
             f"<table><tr><th></th><th>check</th><th>measured</th><th>bar</th></tr>{rows}</table>"]
    if outcome.get("notes"):
        parts.append(f"<p>{html.escape(outcome['notes'])}</p>")
    for name in outcome["plots"]:
        parts.append(f"<figure>{image_tag(folder / name, name)}<figcaption>{html.escape(name)}</figcaption></figure>")
    parts.append("</section>")
    return "\n".join(parts)


def write_experiments_report(out: Path, folders: list[Path]) -> Path:
    """One self-contained ``report.html`` from experiment folders' result.json and plots."""
    sections, summary = [], []
    for folder in folders:
        outcome = json.loads((folder / RESULT).read_text())
        sections.append(section_html(outcome, folder))
        verdict = "passed" if outcome["passed"] else "<b>failed</b>"
        summary.append(f"<tr><td><a href='#{html.escape(outcome['name'])}'>{html.escape(outcome['name'])}</a></td>"
                       f"<td>{verdict}</td><td>{html.escape(outcome['claim'])}</td></tr>")
    page = (page_head("wganlab experiments", 1150, ".verdict{font-size:1.2em}section{margin-bottom:3em}")
            + "<h1>wganlab experiments</h1>"
            f"<table><tr><th>experiment</th><th>verdict</th><th>claim</th></tr>{''.join(summary)}</table>"
            + "\n".join(sections) + "</body></html>")
    path = Path(out) / REPORT
    atomic_write_text(path, page)
    return path
