"""The SQLite file under the registry: where it lives, how it is opened, and
how writes are wrapped.

Several processes share one registry file, so every open sets WAL mode (readers
never block the writer) and a busy timeout, and every write runs in one short
``BEGIN IMMEDIATE`` transaction: writers queue on the database's write lock up
front instead of discovering a conflict half-way, which is what keeps the audit
chain's ``seq``/``prev_hash`` from forking and makes each operation
all-or-nothing even if the process is killed mid-way.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import sqlite_utils

from .errors import InvalidInput, NotFound, RegistryUnusable

__all__ = [
    "BUSY_TIMEOUT_S",
    "PerThreadDatabase",
    "SCHEMA_MIGRATIONS",
    "applied_migrations",
    "conn_snapshot",
    "connect",
    "default_actor",
    "default_registry_path",
    "is_unusable",
    "open_database",
    "read_snapshot",
    "unusable",
    "utc_now",
    "write_transaction",
]

BUSY_TIMEOUT_S = 10.0

# The schema migrations (registry/migrations.py) a current registry file has
# applied, in order. Kept here too so that a call can tell a current file
# from one that needs migrating without importing sqlite-utils; migrations.py
# refuses to load if the two lists differ.
SCHEMA_MIGRATIONS: tuple[str, ...] = (
    "m001_core",
    "m002_search_index",
    "m003_version_policy",
    "m004_search_ranking",
    "m005_latm",
    "m006_packages",
    "m007_review",
    "m008_checks",
    "m010_audit_tree",
    "m011_scale",
    "m012_reviewer_key_expiry",
)


def default_registry_path() -> Path:
    """$TOOLCRIB_REGISTRY, else $XDG_DATA_HOME/toolcrib/registry.db (~/.local/share/...)."""
    explicit = os.environ.get("TOOLCRIB_REGISTRY")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "toolcrib" / "registry.db"


def utc_now() -> str:
    """The current time as UTC ISO 8601 with microseconds and a 'Z' suffix.

    One fixed width and zone means string order is time order, which the
    audit `since` filter relies on.
    """
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_actor() -> str:
    """Who acts when nobody says: $TOOLCRIB_ACTOR, else the OS user name."""
    explicit = os.environ.get("TOOLCRIB_ACTOR")
    if explicit:
        return explicit
    try:
        import getpass

        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid:{os.getuid()}"


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    """The toolcrib migrations this file has applied (none for a new file)."""
    try:
        rows = conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = 'toolcrib' ORDER BY id"
        ).fetchall()
    except sqlite3.OperationalError:  # no such table: a new (or foreign) file
        return []
    return [row[0] for row in rows]


def open_database(path: str | Path, *, create: bool = True) -> sqlite_utils.Database:
    """The registry file as a sqlite-utils Database (see `connect`)."""
    import sqlite_utils  # here, not at the top: a call reads the file through `connect` alone

    return sqlite_utils.Database(connect(path, create=create), execute_plugins=False)


def connect(path: str | Path, *, create: bool = True) -> sqlite3.Connection:
    """Open (or create) the registry file with the settings every connection needs.

    The returned connection is in driver-level autocommit mode
    (``isolation_level=None``): Python's sqlite3 never opens a transaction
    behind our back, so a stray statement cannot hold the write lock.
    """
    path = Path(path).expanduser()
    _check_usable(path, create=create)
    # check_same_thread=False only so that `PerThreadDatabase.close` may close
    # every thread's connection from one thread; each connection is still
    # used by exactly one thread.
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise unusable(path, exc) from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        try:
            _enable_wal(conn)
        except sqlite3.DatabaseError as exc:
            if "not a database" not in str(exc):
                raise
            raise InvalidInput(f"{path} is not a toolcrib registry (not an SQLite database)") from None
        # NORMAL is crash-safe in WAL mode (a killed process never corrupts or
        # half-applies a transaction); only an OS crash may lose the last commits.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        raise unusable(path, exc) from None
    except BaseException:
        conn.close()
        raise


def _check_usable(path: Path, *, create: bool) -> None:
    """Refuse, before SQLite sees it, a registry path that cannot work: not a
    regular file (a directory, /dev/null), or a file or directory this
    process may not write. Every command refuses it, read commands included:
    in WAL mode SQLite writes its ``-shm`` index beside the file even to
    read, so a read-only registry is unusable rather than half-usable (copy
    it somewhere writable to read it). RegistryUnusable (exit 8)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise RegistryUnusable(f"registry {path} cannot be used: {exc.strerror}") from None
    if info is None:
        if not create:
            raise NotFound(f"no registry at {path} (run 'toolcrib init')")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryUnusable(f"registry {path} cannot be created: {exc.strerror}") from None
        if not os.access(path.parent, os.W_OK):
            raise RegistryUnusable(f"registry {path} cannot be created: its directory is read-only (not writable)")
        return
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise RegistryUnusable(f"registry {path} cannot be used: it is {kind}")
    if not os.access(path, os.W_OK):
        raise RegistryUnusable(
            f"registry {path} is read-only: toolcrib needs to write it (even to read: "
            "SQLite's WAL journal); copy it somewhere writable"
        )
    if not os.access(path.parent, os.W_OK):
        raise RegistryUnusable(
            f"registry {path} is in a read-only directory: toolcrib writes its WAL journal "
            "beside it (even to read); copy it somewhere writable"
        )


# SQLite's answers that mean "this file, at this path, cannot be written (or
# opened) here", as opposed to a bug or a busy lock: refused as unusable.
_UNUSABLE_CODES = (
    "SQLITE_READONLY",
    "SQLITE_CANTOPEN",
    "SQLITE_IOERR",
    "SQLITE_PERM",
    "SQLITE_FULL",
    "SQLITE_NOTADB",
    "SQLITE_AUTH",
)


def is_unusable(exc: BaseException) -> bool:
    """Whether an SQLite error says the registry file cannot be used here."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return isinstance(exc, sqlite3.Error) and name.startswith(_UNUSABLE_CODES)


def unusable(path: str | Path, exc: BaseException) -> RegistryUnusable:
    """RegistryUnusable naming the path and SQLite's reason."""
    return RegistryUnusable(f"registry {path} cannot be used: {exc}")


class PerThreadDatabase:
    """One connection to the registry file per thread, opened on first use.

    Why not one connection behind a lock: a connection carries its open
    transaction, so a lock would have to be held from ``BEGIN`` to ``COMMIT``
    across every caller, and a call's sandbox run sits between its reads and
    its audit write. Separate connections are what several processes already
    use safely (WAL: readers never block the writer; ``BEGIN IMMEDIATE`` and the
    busy timeout queue the writers), so threads get the same guarantees with no
    lock of ours held while a tool runs.

    The first connection is opened by the constructor, so a missing or foreign
    file fails there. ``close`` closes every thread's connection; only call it
    once no thread is using the registry any more.
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path).expanduser()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite_utils.Database] = []
        self._closed = False
        self.get(create=create)

    def get(self, *, create: bool = False) -> sqlite_utils.Database:
        """This thread's connection (opened now if it has none)."""
        db: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if db is not None:
            return db
        with self._lock:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        db = open_database(self.path, create=create)
        with self._lock:
            self._all.append(db)
        self._local.db = db
        return db

    def close(self) -> None:
        with self._lock:
            self._closed = True
            every, self._all = self._all, []
        for db in every:
            db.close()


def _enable_wal(conn: sqlite3.Connection) -> None:
    # Switching a fresh file to WAL needs a moment of exclusive access; when
    # several processes create the registry at once, SQLite may report "locked"
    # without consulting the busy handler, so retry within the busy timeout.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


_Db = TypeVar("_Db", "sqlite_utils.Database", sqlite3.Connection)


def _connection(db: Any) -> sqlite3.Connection:
    conn: sqlite3.Connection = db if isinstance(db, sqlite3.Connection) else db.conn
    return conn


@contextmanager
def write_transaction(db: _Db) -> Iterator[_Db]:
    """One all-or-nothing write: ``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any error).

    ``db``: a sqlite-utils Database or a plain connection (a call's path).
    sqlite-utils helpers used inside nest as savepoints, because a transaction
    is already open.
    """
    conn = _connection(db)
    if conn.in_transaction:
        raise RuntimeError("write_transaction does not nest")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if is_unusable(exc):
            raise unusable(_db_path(conn), exc) from None
        raise
    try:
        yield db
    except sqlite3.OperationalError as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        # The file became unwritable under us (remounted read-only, disk
        # full): the same one-line error as at open, not an internal error.
        if is_unusable(exc):
            raise unusable(_db_path(conn), exc) from None
        raise
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    else:
        try:
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if is_unusable(exc):
                raise unusable(_db_path(conn), exc) from None
            raise


def _db_path(conn: sqlite3.Connection) -> str:
    try:
        row = conn.execute("PRAGMA database_list").fetchone()
        return str(row[2]) if row and row[2] else "(unknown)"
    except sqlite3.Error:
        return "(unknown)"


@contextmanager
def read_snapshot(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """Several reads that see one consistent state of the file (a WAL read
    transaction): concurrent writers neither block them nor show through."""
    with conn_snapshot(db.conn):
        yield db


@contextmanager
def conn_snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`read_snapshot` on a plain connection (the lean reads of
    registry/plain_reads.py and the call path)."""
    if conn.in_transaction:  # already inside a transaction: that is the snapshot
        yield conn
        return
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")
