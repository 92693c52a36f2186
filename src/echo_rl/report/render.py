"""A report as a list of blocks, rendered to Markdown and to a self-contained-ish HTML page (images are
referenced by relative path, next to the page); a table also to a terminal (:func:`print_table`)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from echo_rl.rundir import atomic_write_text


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class TableBlock:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Image:
    path: str
    alt: str


Block = Heading | Paragraph | TableBlock | Image


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, TableBlock):
            lines = ["| " + " | ".join(_md_cell(c) for c in block.header) + " |"]
            lines.append("|" + "---|" * len(block.header))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            parts.append("\n".join(lines))
        else:
            parts.append(f"![{block.alt}]({block.path})")
    return "\n\n".join(parts) + "\n"


def to_html(blocks: list[Block], title: str) -> str:
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, TableBlock):
            head = "".join(f"<th>{html.escape(c)}</th>" for c in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            body.append(f'<figure><img src="{html.escape(block.path)}" alt="{html.escape(block.alt)}"></figure>')
    style = (
        "body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
        "th{background:#f3f3f3}img{max-width:100%}"
    )
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def print_table(console: Any, title: str, table: TableBlock, caption: str | None = None) -> None:
    """``table`` on a rich console (first column left-aligned, the others right)."""
    from rich.table import Table

    shown = Table(title=title, caption=caption)
    for index, name in enumerate(table.header):
        shown.add_column(name, justify="right" if index else "left", overflow="fold")
    for row in table.rows:
        shown.add_row(*row)
    console.print(shown)


def write_page(blocks: list[Block], out: Path, title: str) -> Path:
    """Write ``blocks`` as ``out/report.md`` and ``out/report.html`` (atomically); return the Markdown path."""
    atomic_write_text(out / "report.md", to_markdown(blocks))
    atomic_write_text(out / "report.html", to_html(blocks, title))
    return out / "report.md"
