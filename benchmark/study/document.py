"""A report as a list of blocks (headings, paragraphs, lists, tables, figures), rendered to Markdown or to one
self-contained HTML page (figures inlined, no network at view time)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    path: Path
    caption: str


Block = Heading | Paragraph | Bullets | Table | Figure


@dataclass
class Report:
    """An ordered list of blocks with a title."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)


def to_markdown(report: Report, relative_to: Path) -> str:
    """Markdown (tables via tabulate's GitHub format); figures linked relative to the report's folder."""
    out = [f"# {report.title}", ""]
    for block in report.blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            out += [block.text, ""]
        elif isinstance(block, Bullets):
            out += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            out += ([f"*{block.caption}*", ""] if block.caption else [])
            out += [tabulate(block.rows, headers=block.headers, tablefmt="github", disable_numparse=True), ""]
        else:
            link = Path(block.path).resolve().relative_to(relative_to.resolve())
            out += [f"![{block.caption}]({link.as_posix()})", "", f"*{block.caption}*", ""]
    return "\n".join(out)


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
caption{caption-side:top;text-align:left;font-style:italic;padding:.3rem 0}
figure{margin:1rem 0}figcaption{font-style:italic}img{max-width:100%}
"""


def to_html(report: Report) -> str:
    """One self-contained HTML page of the report."""
    esc = html.escape
    body = [f"<h1>{esc(report.title)}</h1>"]
    for block in report.blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{esc(h)}</th>" for h in block.headers)
            rows = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in block.rows)
            caption = f"<caption>{esc(block.caption)}</caption>" if block.caption else ""
            body.append(f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            data = base64.b64encode(Path(block.path).read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{esc(block.caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{esc(block.caption)}</figcaption></figure>")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(report.title)}</title>'
            f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>\n")
