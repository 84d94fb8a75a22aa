"""The Pushgateway's ``--web.config.file``: basic auth for one user, its bcrypt hash from a secret file.

    python include/compose/pushgateway_web.py /run/secrets/pushgateway_password /pushgateway-web/web.yml [user]

Without it any container on the compose network could push fake drift or decay series and drive
the alerts. The password never lands in the file (only its bcrypt hash, which the Prometheus
exporter toolkit requires), and the file is rewritten at every start, so rotating the secret
takes effect on the next ``docker compose up``. Standard library only (``crypt`` with libxcrypt's
bcrypt, Python 3.9 to 3.12: the stack's image runs 3.11).
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

USER = "mlops"


def bcrypt_hash(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # deprecated in 3.11 (removed in 3.13), but no bcrypt package is in the image

        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
    if not hashed or not hashed.startswith("$2"):
        raise SystemExit("this Python's crypt has no bcrypt; run the script with the stack's image")
    return hashed


def web_config(user: str, password: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", user):
        raise SystemExit(f"user {user!r}: letters, digits, '_', '.' and '-' only")
    if not password:
        raise SystemExit("the Pushgateway password is empty; generate the stack's secrets first")
    return f'basic_auth_users:\n  {user}: "{bcrypt_hash(password)}"\n'


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    password = Path(argv[0]).read_text().strip()
    target = Path(argv[1])
    target.write_text(web_config(argv[2] if len(argv) == 3 else USER, password))
    target.chmod(0o644)  # the Pushgateway runs as nobody; a bcrypt hash is not the password
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
