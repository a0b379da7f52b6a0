"""A short critical section shared by every process working on one study.

The pymoo driver publishes a generation's slots under it, so that two workers replaying the
same generation never enqueue a slot twice. The lock lives where the study lives:

- PostgreSQL: a session-level advisory lock (``pg_advisory_lock``);
- MySQL / MariaDB: a named lock (``GET_LOCK``);
- SQLite: an ``flock`` on ``<database>.lock`` beside the file (SQLite is one host's);
- in-memory storage: a lock of this process (no other process can reach it);
- a gRPC storage proxy (``grpc://``): refused, naming the alternatives (it passes no lock on).

Each is released when its holder's connection or process ends, so a worker killed inside
the section (SIGKILL) never leaves the study locked.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["study_lock"]

_LOCAL = threading.Lock()
LOCK_TIMEOUT = 600  # seconds; held for milliseconds in practice


def _rdb(storage: Any) -> Any:
    from optuna.storages import RDBStorage

    backend = getattr(storage, "_backend", storage)  # optuna wraps RDBStorage in a cache
    return backend if isinstance(backend, RDBStorage) else None


def _key(study_name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory locks."""
    digest = hashlib.sha256(f"moo-search:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def study_lock(study: Any) -> Iterator[None]:
    """Hold the study's lock for the ``with`` block (blocks while another process holds it)."""
    rdb = _rdb(study._storage)
    if type(study._storage).__name__ == "GrpcStorageProxy":
        from moo_search.errors import StorageError

        raise StorageError(
            "the pymoo driver publishes each generation under a lock of the study's database, "
            "which a gRPC storage proxy does not pass on; use driver.backend: optuna with "
            "--storage grpc://..., or give the pymoo workers the database URL itself"
        )
    if rdb is None:
        with _LOCAL:
            yield
        return
    engine = rdb.engine
    dialect = engine.dialect.name
    if dialect == "sqlite":
        with _file_lock(str(engine.url.database)):
            yield
        return
    import sqlalchemy

    with engine.connect() as conn:
        if dialect == "postgresql":
            key = _key(study.study_name)
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        elif dialect in ("mysql", "mariadb"):
            name = f"moo-search:{_key(study.study_name):x}"  # MySQL caps lock names at 64 chars
            got = conn.execute(
                sqlalchemy.text("SELECT GET_LOCK(:n, :t)"), {"n": name, "t": LOCK_TIMEOUT}
            ).scalar()
            if got != 1:
                from moo_search.errors import StorageError

                raise StorageError(
                    f"study {study.study_name!r}: could not take its lock within {LOCK_TIMEOUT} s"
                )
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:n)"), {"n": name})
                conn.commit()
        else:  # another SQLAlchemy dialect: one process at a time is all we can promise
            with _LOCAL:
                yield


@contextlib.contextmanager
def _file_lock(db_path: str) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: processes of one host share nothing
        with _LOCAL:
            yield
        return
    with _LOCAL, open(f"{db_path}.lock", "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
