"""Rows of dicts as tables a notebook can display: Markdown (``IPython.display.Markdown``) and
HTML (``IPython.display.HTML``). Used by the lessons of notebooks 03 and 05."""
from __future__ import annotations

import html


def table_columns(rows: list[dict], columns=None) -> list[str]:
    """``columns`` as a list, or the first row's keys when None (no rows: no columns)."""
    return list(columns) if columns is not None else (list(rows[0]) if rows else [])


def markdown_table(rows: list[dict], columns=None) -> str:
    """A Markdown table of ``rows`` (dicts; columns default to the first row's keys, missing cells
    are blank, ``|`` is escaped)."""
    columns = table_columns(rows, columns)
    lines = ["| " + " | ".join(map(str, columns)) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")).replace("|", "\\|") for c in columns) + " |")
    return "\n".join(lines)


def html_table(rows: list[dict], columns=None) -> str:
    """An HTML table of ``rows`` (cells escaped)."""
    columns = table_columns(rows, columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(row.get(c, '')))}</td>" for c in columns)
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


__all__ = ["table_columns", "markdown_table", "html_table"]
