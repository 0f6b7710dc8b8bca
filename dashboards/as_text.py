"""Delivered text shown as text: never as markdown, never as HTML (no Streamlit import).

Service names, channels, departments and reject reasons come from the landing area, which
other organisations write. `st.table` renders the markdown of every cell, so a service named
`![t](http://host/x.png)` made every operator's browser fetch that URL, and
`[click](javascript:…)` became a link. Tables are therefore our own HTML with every cell
escaped (`html_table`); a line of `st.markdown` that carries delivered text escapes it first
(`markdown_literal`).
"""
from __future__ import annotations

import html
import re

import pandas as pd

# Looks like st.table's (Streamlit's light theme): the tests and the screenshots read the same page.
TABLE_CSS = """
.cc-table { width: 100%; border-collapse: collapse; font-size: 0.875rem; line-height: 1.6;
            color: rgb(49, 51, 63); margin-bottom: 1rem; }
.cc-table th, .cc-table td { border: 1px solid rgba(49, 51, 63, 0.1); padding: 0.25rem 0.375rem;
                             vertical-align: middle; overflow-wrap: anywhere; }
.cc-table th { color: rgba(49, 51, 63, 0.6); font-weight: 400; text-align: left; }
.cc-table td.num { text-align: right; }
"""

# CommonMark lets any ASCII punctuation be escaped with a backslash: escaped, it is only text
# (no link, image, emphasis, HTML, math or directive can start).
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def markdown_literal(text: object) -> str:
    """`text` for a markdown string (st.markdown, st.caption, …) so that it shows as written."""
    return _PUNCTUATION.sub(r"\\\1", str(text)).replace("\n", " ")


def _cells(column: pd.Series) -> list[str]:
    """A column's cells as st.table showed them: floats to 4 places with separators, booleans
    true/false, missing empty."""
    if pd.api.types.is_bool_dtype(column):
        fmt = lambda v: "true" if v else "false"  # noqa: E731
    elif pd.api.types.is_float_dtype(column):
        fmt = lambda v: f"{v:,.4f}"  # noqa: E731
    else:
        fmt = str
    return ["" if _missing(v) else fmt(v) for v in column]


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or an array in a cell
        return False


def html_table(df: pd.DataFrame) -> str:
    """A static HTML table of `df` (its index not shown), every header and cell HTML-escaped."""
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    columns = [_cells(df.iloc[:, i]) for i in range(df.shape[1])]
    body = "".join(
        "<tr>" + "".join(f'<td{" class=num" if numeric[i] else ""}>{html.escape(col[r])}</td>'
                         for i, col in enumerate(columns)) + "</tr>"
        for r in range(len(df)))
    return f'<style>{TABLE_CSS}</style><table class="cc-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
