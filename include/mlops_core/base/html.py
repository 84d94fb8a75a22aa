"""Escaping for the HTML reports the package writes (the validation page, the Evidently drift page).

Data producers are not trusted: column names, cell values, observed values and messages can carry
markup. Every data value goes through :func:`escape` before it lands in markup the package builds,
and JSON embedded in a ``<script>`` goes through :func:`script_json`, so no value can open a tag or
close the script it sits in. Pages the package builds itself carry :data:`CSP_NO_SCRIPT`: they need
no script, so a browser runs none even if an escape were ever missed.

Markdown the package writes (model cards) puts every data value through :func:`markdown`: literal
inline text that cannot open a link, an image, a code span, raw HTML or a new table cell or row.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

# No script, no external loads, no forms, no <base>; only the page's own <style> and data: images.
CSP_NO_SCRIPT = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
)

# Inside a JSON text '<', '>' and '&' can only occur in strings, where \uXXXX is the same character:
# the JSON parses to the same values but can never form '</script>' or '<!--'. U+2028/U+2029 are
# line terminators to older JavaScript parsers.
_SCRIPT_SAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def escape(value: Any) -> str:
    """``value`` as text safe in HTML content and in quoted attributes (``<>&"'`` escaped)."""
    return html.escape(value if isinstance(value, str) else str(value), quote=True)


# Characters that end a line for some reader (a Markdown table row, a JavaScript string, a terminal)
# become character references: a browser shows the same character, the file never breaks there.
_LINE_BREAKS = {ord(c): f"&#x{ord(c):x};" for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}
# Other control characters have no business in a report: shown as U+FFFD (tab as a space).
_CONTROLS = {
    **{c: "\ufffd" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if c not in _LINE_BREAKS},
    0x09: " ",
}
# What CommonMark/GFM gives a meaning inline: emphasis, code, links and images (no link or image
# can start without '['), raw HTML and autolinks, entities, table cells, strike-through, math,
# headings. Each is written backslash-escaped.
_MD_SPECIAL = {ord(c): "\\" + c for c in "\\`*{}[]<>#|~&$"}
# '_' only where it could open or close emphasis (not inside a word such as mean_radius).
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# A bullet or ordered-list marker at the start of a value (one that starts a list item).
_MD_BLOCK_START = re.compile(r"^([-+]|\d{1,9}[.)])(?=\s|$)")


def escape_line(value: Any) -> str:
    """:func:`escape` on one line: line terminators as character references, controls as U+FFFD."""
    text = value if isinstance(value, str) else str(value)
    return escape(text.translate(_CONTROLS)).translate(_LINE_BREAKS)


def markdown(value: Any) -> str:
    """``value`` as literal inline Markdown (CommonMark + GFM tables), on one line.

    Every character Markdown gives a meaning is backslash-escaped (a link ``[a](javascript:...)``,
    raw HTML ``<script>``, a backtick, a table's ``|`` all stay text), a leading list marker is
    escaped, and line terminators (newline, U+2028...) become character references, so a value
    can neither end a table row nor start a block. Rendered, it reads as the original text.
    """
    text = (value if isinstance(value, str) else str(value)).translate(_CONTROLS).strip()
    text = _MD_UNDERSCORE.sub(r"\\_", text.translate(_MD_SPECIAL))
    text = _MD_BLOCK_START.sub(lambda m: m.group()[:-1] + "\\" + m.group()[-1], text)
    return text.translate(_LINE_BREAKS)


def script_json(value: Any, **dumps_kwargs: Any) -> str:
    """``json.dumps(value, **dumps_kwargs)`` safe to embed in an inline ``<script>``."""
    return json.dumps(value, **dumps_kwargs).translate(_SCRIPT_SAFE)


def document(title: str, body: str, *, style: str = "") -> str:
    """A standalone page with :data:`CSP_NO_SCRIPT`.

    :param title: plain text; escaped here.
    :param body: markup the caller built with every data value passed through :func:`escape`.
    :param style: CSS written by the package (never data).
    """
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP_NO_SCRIPT}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{style}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
