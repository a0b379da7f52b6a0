"""Opening the one Optuna storage a study lives in."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from moo_search.errors import StorageError
from moo_search.redact import redact_url
from moo_search.spec._driver import GRACE_PERIOD, HEARTBEAT_INTERVAL

__all__ = ["open_storage", "resolve_storage_arg", "serve_storage_proxy"]

logger = logging.getLogger("moo_search")

MAX_RETRY = 2
SCHEMA_RACE_RETRIES = 5


def _schema_race(e: BaseException) -> bool:
    """Whether ``e`` is another process creating the same new database's tables."""
    text = str(e).lower()
    return any(
        m in text
        for m in ("already exists", "duplicate key", "duplicate entry", "unique constraint failed")
    )


@contextlib.contextmanager
def _creating(url: str) -> Iterator[None]:
    """For a SQLite URL, one process at a time creates or upgrades the database's tables
    (an advisory lock on its directory, POSIX only); elsewhere the retries suffice."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    if not url.startswith("sqlite:"):
        yield
        return
    fd = os.open(Path(_sqlite_path(url)).parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _sqlite_path(url: str) -> str:
    return url.split("///", 1)[1] if "///" in url else ""


def _check_sqlite(url: str, *, read_only: bool) -> None:
    """Refuse SQLite URLs that would lose the study or write where a read was asked."""
    path = _sqlite_path(url)
    if path in ("", ":memory:"):
        raise StorageError(
            f"storage {url}: an in-memory SQLite database is gone when the process ends and "
            "no other process can join it; use sqlite:///path/to/study.db (or memory:// for a "
            "throwaway study)"
        )
    p = Path(path)
    if read_only:
        if not p.is_file():
            raise StorageError(f"{p}: no such study database")
        with p.open("rb") as f:
            head = f.read(16)
        if head != b"SQLite format 3\x00":
            raise StorageError(
                f"{p}: not an SQLite study database "
                f"({'an empty file' if not head else 'unknown format'}); nothing was changed"
            )
    elif p.exists() and not os.access(p, os.W_OK):
        raise StorageError(f"{p}: the study database is read-only; a run needs to write to it")


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = HEARTBEAT_INTERVAL,
    grace_period: int | None = GRACE_PERIOD,
    read_only: bool = False,
) -> Any:
    """An Optuna storage for ``url``.

    ``sqlite:///path`` (the embedded default; busy timeout so that a few local worker
    processes can share it), ``postgresql://...`` / ``mysql+pymysql://...`` for studies that
    span hosts, ``memory://`` for tests and benchmarks. RDB storages get heartbeats: a worker
    that dies mid-trial has its trial failed after ``grace_period`` and retried.
    ``read_only`` (reports, exports) opens only an existing SQLite database and creates
    nothing.
    """

    import optuna

    if url in ("memory", "memory://", ":memory:"):
        return optuna.storages.InMemoryStorage()
    if url.startswith("grpc://"):
        return _grpc_proxy(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        _check_sqlite(url, read_only=read_only)
        if not read_only:
            Path(_sqlite_path(url)).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 120}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        return _rdb_storage(url, engine_kwargs, heartbeat_interval, grace_period)
    except ImportError as e:
        raise StorageError(
            f"storage {redact_url(url)}: the database driver is missing ({e}); "
            "install moo-search[postgres] or moo-search[mysql]"
        ) from None
    except Exception as e:  # sqlalchemy raises many types for a bad URL or host
        raise StorageError(
            f"cannot open storage {redact_url(url)}: {str(e).splitlines()[0]}"
        ) from None


def _rdb_storage(
    url: str,
    engine_kwargs: dict[str, Any],
    heartbeat_interval: int | None,
    grace_period: int | None,
) -> Any:
    """Optuna's RDBStorage for ``url``, with heartbeats and retries; opened again when two
    processes creating a new database together race on its tables."""
    import warnings

    import optuna
    from optuna.storages import RDBStorage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = _retry_callback(RDBStorage, heartbeat_interval)
    for attempt in range(SCHEMA_RACE_RETRIES + 1):
        try:
            with _creating(url), warnings.catch_warnings():
                # heartbeats are marked experimental in Optuna; we rely on them deliberately
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    **retry,
                )
        except Exception as e:
            # two processes opening a new database together both create its tables;
            # the loser sees them half made ("already exists") and simply opens again
            if attempt == SCHEMA_RACE_RETRIES or not _schema_race(e):
                raise
            logger.debug("storage schema created concurrently (%s); opening again", e)
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _grpc_proxy(url: str) -> Any:
    """``grpc://host:port``: Optuna's ``GrpcStorageProxy`` to a ``moo-search storage-proxy``
    (one database connection pool serving many workers). Heartbeats do not pass through the
    proxy: a worker that dies mid-trial leaves that trial RUNNING (the budget counts complete
    trials, so the study still ends), and ``moo-search run --workers N`` fails a dead local
    worker's trials itself."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.hostname or not parts.port:
        raise StorageError(f"storage {url}: expected grpc://HOST:PORT (a moo-search storage-proxy)")
    try:
        from optuna.storages import GrpcStorageProxy
    except ImportError as e:
        raise StorageError(
            f"storage {url}: the gRPC client is missing ({e}); install moo-search[grpc]"
        ) from None
    try:
        import grpc  # noqa: F401
    except ImportError:
        raise StorageError(f"storage {url}: grpcio is missing; install moo-search[grpc]") from None
    import socket

    try:  # a clear error now rather than a gRPC timeout inside the first request
        socket.create_connection((parts.hostname, parts.port), timeout=5).close()
    except OSError as e:
        raise StorageError(
            f"storage {url}: no storage proxy answers there ({e}); start one with "
            f"`moo-search storage-proxy DATABASE_URL --port {parts.port}`"
        ) from None
    return GrpcStorageProxy(host=parts.hostname, port=parts.port)


def serve_storage_proxy(url: str, *, host: str, port: int) -> None:
    """``moo-search storage-proxy``: serve the study storage at ``url`` over gRPC on
    ``host:port`` until interrupted (Optuna's ``run_grpc_proxy_server``)."""
    import warnings

    import optuna
    from optuna.storages import run_grpc_proxy_server

    if url.startswith(("grpc://", "memory")):
        raise StorageError(
            f"storage-proxy {url}: expected a database URL (sqlite:///, postgresql://)"
        )
    storage = open_storage(url, heartbeat_interval=None, grace_period=None)
    logger.info("storage proxy for %s on %s:%d", redact_url(url), host, port)
    with warnings.catch_warnings():  # marked experimental in Optuna; used deliberately
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        run_grpc_proxy_server(storage, host=host, port=port)


def _retry_callback(rdb: Any, heartbeat_interval: int | None) -> dict[str, Any]:
    """Retry heartbeat-stale trials: ``heartbeat_stale_trial_callback`` on Optuna >= 4.9,
    ``failed_trial_callback`` before."""
    import inspect

    import optuna

    if not heartbeat_interval:
        return {}
    if "heartbeat_stale_trial_callback" in inspect.signature(rdb).parameters:
        cb = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
        return {"heartbeat_stale_trial_callback": cb}
    return {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=MAX_RETRY)}


def resolve_storage_arg(target: str) -> tuple[str, Path | None]:
    """A study directory (holding study.db) or a storage URL -> (url, study dir or None)."""
    if "://" in target or target.startswith("memory"):
        return target, None
    p = Path(target)
    if p.is_dir():
        db = p / "study.db"
        if not db.is_file():
            raise StorageError(
                f"{p}: no study.db in this directory; pass the study directory or a storage URL"
            )
        return f"sqlite:///{db.as_posix()}", p
    if p.is_file() and p.suffix in (".db", ".sqlite", ".sqlite3"):
        return f"sqlite:///{p.as_posix()}", p.parent
    raise StorageError(f"{target}: not a study directory, a .db file or a storage URL")
