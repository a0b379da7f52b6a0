"""One redaction for every storage URL that is printed, stored or rendered."""

from __future__ import annotations

import re

__all__ = ["redact_url"]

# scheme://user:password@host...  (the password may hold anything but '@' and '/')
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):(?P<pw>[^@/\s]+)@")


def redact_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``; a URL without a password
    is returned unchanged."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}:***@", url)
