"""One redaction for every storage URL that is printed, stored or rendered."""

from __future__ import annotations

import re

__all__ = ["SECRET_PARAMS", "redact_url"]

# scheme://user:password@host... where SQLAlchemy cannot parse it: up to the last '@'
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):(?P<pw>[^\s]+)@")
SECRET_PARAMS = frozenset(
    {"password", "passwd", "pwd", "sslpassword", "secret", "token", "access_token", "api_key"}
)
"""Query-string parameters whose values are secrets (``?password=...`` is accepted by
SQLAlchemy and by libpq)."""
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&](?:" + "|".join(sorted(SECRET_PARAMS)) + r"))=(?P<value>[^&#\s]*)",
    re.IGNORECASE,
)


def redact_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``, and the value of every
    secret query parameter (``?password=...``, :data:`SECRET_PARAMS`) -> ``***``, whatever
    characters the secret holds. Parsed as SQLAlchemy parses it where it can (what the
    storage will connect with); a URL with no secret is returned unchanged."""
    out = url
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
    except Exception:  # not an SQLAlchemy URL (a path, a journal file): the patterns alone
        u = None
    if u is not None and u.password is not None:
        out = u.render_as_string(hide_password=True)  # SQLAlchemy's own: user:***@host
    # and up to the last '@' (an unencoded '@' in a password would leave its rest as a host)
    out = _URL_PASSWORD.sub(lambda m: f"{m['head']}:***@", out)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}=***", out)
