"""Escaping for the HTML reports the package writes (the validation page, the Evidently drift page).

Data producers are not trusted: column names, cell values, observed values and messages can carry
markup. Every data value goes through :func:`escape` before it lands in markup the package builds,
and JSON embedded in a ``<script>`` goes through :func:`script_json`, so no value can open a tag or
close the script it sits in. Pages the package builds itself carry :data:`CSP_NO_SCRIPT`: they need
no script, so a browser runs none even if an escape were ever missed.
"""

from __future__ import annotations

import html
import json
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
