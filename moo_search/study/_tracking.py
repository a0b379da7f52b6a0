"""An MLflow tracking URI checked before MLflow sees it, with its credentials kept out of it.

Every place that hands a URI to MLflow (``run --mlflow``, the spec's ``mlflow``, ``export
--register --tracking-uri``) goes through :func:`tracking_uri`:

- the scheme is one MLflow's tracking client serves (``http(s)://``, ``databricks``, or a
  database: ``sqlite:///``, ``postgresql://``, ``mysql://``, ``mssql://``); a bare path and
  ``file:`` (MLflow 3's file store is in maintenance mode and refuses new runs) or an unknown
  scheme are refused naming the flag, with what would work;
- an SQLite file must be creatable: its directory exists and is writable;
- ``http://user:password@host`` has its credentials moved into MLflow's own
  ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (sent as basic auth), so no
  URL MLflow prints, logs or stores holds them; a database URI keeps them (SQLAlchemy needs
  them), and everything we print goes through :func:`scrub`;
- MLflow's HTTP retry budget (7 retries, ~4 minutes a request) is bounded for this process
  unless the user set it (:data:`HTTP_DEFAULTS`), and MLflow's "View run at" lines are off.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from moo_search.errors import SpecError
from moo_search.redact import redact_url

__all__ = ["HTTP_DEFAULTS", "scrub", "tracking_uri"]

DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
"""Set for this process where the environment does not set them: a tracking server that does
not answer costs seconds, not minutes, and MLflow prints no run URLs on our stdout."""

_SECRETS: set[str] = set()


def scrub(text: str) -> str:
    """``text`` with every URL's password and every credential seen by :func:`tracking_uri`
    (or set in ``MLFLOW_TRACKING_PASSWORD`` / ``_TOKEN``) replaced by ``***``."""
    out = redact_url(text)
    env = (os.environ.get(k) for k in ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"))
    for secret in sorted(_SECRETS | {s for s in env if s}, key=len, reverse=True):
        if len(secret) >= 3:
            out = out.replace(secret, "***")
    return out


def _refuse(flag: str, uri: str, why: str) -> SpecError:
    return SpecError(
        f"{flag} {scrub(uri)!r}: {why}; expected an MLflow tracking URI such as "
        "http://host:5000, https://host, databricks, or sqlite:///path/mlflow.db"
    )


def tracking_uri(uri: str, *, flag: str = "--mlflow") -> str:
    """The URI to give MLflow for ``uri`` (from ``flag``), checked (see the module docstring);
    raises :class:`SpecError` naming ``flag``."""
    uri = uri.strip()
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    base = scheme.split("+", 1)[0]
    if not uri:
        raise _refuse(flag, uri, "it is empty")
    if scheme in ("", "file") or (len(scheme) == 1 and uri[1:3] in (":\\", ":/")):
        raise _refuse(
            flag,
            uri,
            "a local directory is MLflow's file store, which MLflow 3 no longer accepts for "
            "new runs (use sqlite:///<dir>/mlflow.db for a local store)",
        )
    if base == "sqlite":
        _check_sqlite(flag, uri)
    elif scheme in ("http", "https"):
        if not parts.hostname:
            raise _refuse(flag, uri, "it names no host")
        return _without_credentials(parts)
    elif scheme not in ("databricks", "databricks-uc", "uc") and base not in DATABASE_SCHEMES:
        raise _refuse(flag, uri, f"MLflow has no tracking store for the scheme {scheme!r}")
    if parts.password:
        _SECRETS.add(unquote(parts.password))
    _bound_http()
    return uri


def _check_sqlite(flag: str, uri: str) -> None:
    path = uri.split(":///", 1)[1] if ":///" in uri else ""
    if not path or path == ":memory:":
        raise _refuse(flag, uri, "an SQLite store needs a file path (sqlite:///path/mlflow.db)")
    target = Path(path.split("?", 1)[0])
    folder = target.parent if not target.is_dir() else target
    if target.is_dir():
        raise _refuse(flag, uri, f"{target} is a directory, not a database file")
    if not folder.is_dir():
        raise _refuse(flag, uri, f"the directory {folder} does not exist")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise _refuse(flag, uri, f"{target if target.exists() else folder} is not writable")


def _without_credentials(parts: SplitResult) -> str:
    """``http://u:pw@host/x`` -> ``http://host/x``; u and pw go to MLflow's environment."""
    if parts.username is not None or parts.password is not None:
        user, pw = unquote(parts.username or ""), unquote(parts.password or "")
        if pw:
            _SECRETS.add(pw)
            os.environ["MLFLOW_TRACKING_PASSWORD"] = pw
        if user:
            os.environ["MLFLOW_TRACKING_USERNAME"] = user
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        netloc = f"{host}:{parts.port}" if parts.port else host
        parts = parts._replace(netloc=netloc)
    _bound_http()
    return urlunsplit(parts)


def _bound_http() -> None:
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
