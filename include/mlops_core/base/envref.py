"""The one grammar of ``${VAR}`` references: parse, check names against an allow-list, expand.

Parse time (:func:`mlops_core.spec.check_env_refs`) and run time (:func:`mlops_core.base.settings.expand`)
both go through :func:`parse`, so a string the parse-time check accepts is exactly a string the
expander accepts, and the names it may read are the names that were checked. The grammar::

    reference := "${" NAME "}" | "${" NAME ":-" DEFAULT "}"
    NAME      := [A-Z][A-Z0-9_]{0,63}
    DEFAULT   := any characters but "$", "{" and "}"

Every ``${`` starts a reference. There is no nesting (a ``$`` or ``{`` inside a reference is
refused, so ``${MLOPS_X:-${SECRET}}`` cannot smuggle ``SECRET`` past the check), no escape
(``$${`` is refused rather than guessed at), and an unclosed ``${`` is an error, never literal
text. An expansion never yields ``${``: a value that would is refused, so expanding an already
expanded string changes nothing (no value is ever expanded twice).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
# Names a pipeline YAML may never expand, even declared: credentials or Airflow's own settings.
SECRET_NAME = re.compile(
    r"(^AIRFLOW|PASSW|SECRET|TOKEN|KEY|CREDENTIAL|FERNET|_CONN|SQL_ALCHEMY|DATABASE|^AWS_|^AZURE_|^GOOGLE_|SAS|AUTH)"
)
FIX = "write ${NAME} or ${NAME:-default} (NAME: A-Z, 0-9 and _; a default holds no '$', '{' or '}')"


class EnvRefError(ValueError):
    """A string that is not in the ``${VAR}`` grammar, or names a variable it may not read."""


@dataclass(frozen=True)
class Reference:
    """One ``${NAME}`` or ``${NAME:-default}``."""

    name: str
    default: str | None


def parse(text: str) -> list[str | Reference]:
    """``text`` as literal pieces and references, or :class:`EnvRefError` naming the fault and the fix."""
    parts: list[str | Reference] = []
    pos = 0
    while (start := text.find("${", pos)) >= 0:
        if start > 0 and text[start - 1] == "$":
            raise EnvRefError(f"'$${{' at character {start - 1} is not an escape and is not allowed; {FIX}")
        end = text.find("}", start + 2)
        if end < 0:
            raise EnvRefError(f"'${{' at character {start} is never closed by '}}'; {FIX}")
        body = text[start + 2 : end]
        if "$" in body or "{" in body:
            raise EnvRefError(
                f"{text[start : end + 1]!r}: a reference may not hold another reference, '$' or '{{' "
                f"(no nesting); {FIX}"
            )
        name, sep, default = body.partition(":-")
        if not NAME.fullmatch(name):
            raise EnvRefError(f"{text[start : end + 1]!r}: {name!r} is not a variable name; {FIX}")
        parts += [text[pos:start], Reference(name, default if sep else None)]
        pos = end + 1
    parts.append(text[pos:])
    return [p for p in parts if p != ""]


def name_problem(name: str, declared: Collection[str] | None) -> str | None:
    """Why ``name`` may not be read, or None.

    :param declared: the pipeline's ``env:`` list (then only ``MLOPS_*`` and these names are
        allowed); None: any name that does not look like a credential.
    """
    if SECRET_NAME.search(name):
        return (
            f"${{{name}}} looks like a credential or an Airflow setting; a pipeline YAML cannot read it "
            "(put credentials in an Airflow connection and name it with conn_id)"
        )
    if declared is not None and not (name.startswith("MLOPS_") or name in declared):
        return (
            f"${{{name}}} is not a variable this pipeline may read; use an MLOPS_* variable or declare "
            f"it under env: [{name}]"
        )
    return None


def problems(text: str, declared: Collection[str] | None = None) -> list[str]:
    """Every fault of ``text``: its grammar, then each name it may not read (parse time's check)."""
    try:
        parts = parse(text)
    except EnvRefError as err:
        return [str(err)]
    found = [name_problem(p.name, declared) for p in parts if isinstance(p, Reference)]
    return [p for p in found if p is not None]


def expand(
    text: str,
    lookup: Callable[[str, str | None], str],
    declared: Collection[str] | None = None,
    *,
    trusted: bool = False,
) -> str:
    """``text`` with every reference replaced by ``lookup(name, default)``.

    Nothing is looked up unless the whole string is in the grammar and every name may be read.

    :param declared: as :func:`name_problem`.
    :param trusted: the operator's own files (the cloud profiles): any well-formed name.
    :raises EnvRefError: grammar, a refused name, or a result that would hold ``${``.
    """
    parts = parse(text)
    if not trusted:
        for part in parts:
            if isinstance(part, Reference) and (why := name_problem(part.name, declared)):
                raise EnvRefError(why)
    out = "".join(p if isinstance(p, str) else lookup(p.name, p.default) for p in parts)
    if "${" in out:
        raise EnvRefError(
            f"{text!r} expands to a value holding '${{' (a variable's value may not hold a reference: "
            "it is expanded once, never again); fix the variable's value"
        )
    return out
