"""The one HTML helper of every page wganlab writes: a self-contained page head with the shared
style, and PNGs inlined as base64 (a page opens anywhere, offline, with nothing beside it)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

STYLE = """body{font-family:system-ui,sans-serif;max-width:%dpx;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 10px;text-align:left}
th{background:#f4f4f4;font-weight:600}img{max-width:100%%;border:1px solid #eee}"""


def page_head(title: str, width: int = 1100, extra_style: str = "") -> str:
    """``<!doctype html>`` up to the opened ``<body>``: title, the shared style (page ``width`` px) and ``extra_style``."""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE % width}{extra_style}</style></head><body>")


def png_base64(data: bytes | Path) -> str:
    """A PNG's bytes (or file) as base64 text for a ``data:`` URL."""
    return base64.b64encode(data.read_bytes() if isinstance(data, Path) else data).decode()


def image_tag(data: bytes | Path, alt: str) -> str:
    """An ``<img>`` with the PNG inlined."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png_base64(data)}">'
