"""SQLite connections, schema and error mapping for ``SQLiteStore``.

Each thread gets its own connection (``sqlite3`` connections must not be shared while in
use). The file is opened in WAL mode so readers do not wait for the writer. Every write runs in
a ``BEGIN IMMEDIATE`` transaction, which takes the write lock up front, so a read-modify-write
inside it cannot interleave with another thread's or process's write. A writer that waits
longer than the busy timeout gets ``StoreUnavailableError``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from opsforge_core.errors import StoreError, StoreUnavailableError

logger = logging.getLogger(__name__)

INIT_HINT = "run `python -m opsforge_core store init`"


class _Connection(sqlite3.Connection):
    """A connection that ``weakref`` can track, so ``close()`` reaches every thread's one."""


def schema(names: dict[str, str]) -> dict[str, list[str]]:
    """Return the CREATE statements of each table by logical name (keys as in DynamoDB)."""
    inc, pat, kno, feed = (f'"{names[k]}"' for k in ("incidents", "patterns", "knowledge", "feed"))
    return {
        "incidents": [
            f"""CREATE TABLE IF NOT EXISTS {inc} (
                incident_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, status TEXT NOT NULL,
                severity TEXT NOT NULL, title TEXT NOT NULL, root_cause TEXT NOT NULL,
                alert_count INTEGER NOT NULL, services TEXT NOT NULL, search_text TEXT NOT NULL,
                fingerprints TEXT NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL)""",
            f'CREATE INDEX IF NOT EXISTS "{names["incidents"]}-by-status" '
            f"ON {inc} (status, created_at)",
            f'CREATE INDEX IF NOT EXISTS "{names["incidents"]}-by-created" ON {inc} (created_at)',
        ],
        "patterns": [
            f"""CREATE TABLE IF NOT EXISTS {pat} (
                pattern_id TEXT PRIMARY KEY, signature TEXT NOT NULL, doc TEXT NOT NULL)""",
            f'CREATE INDEX IF NOT EXISTS "{names["patterns"]}-by-signature" ON {pat} (signature)',
        ],
        "knowledge": [
            f"""CREATE TABLE IF NOT EXISTS {kno} (
                agent_name TEXT NOT NULL, knowledge_key TEXT NOT NULL, doc TEXT NOT NULL,
                PRIMARY KEY (agent_name, knowledge_key)) WITHOUT ROWID""",
        ],
        # A rowid table, because alert documents are about 1 KB. Writing such rows into a
        # WITHOUT ROWID table took about 2.5 times the CPU in batches of 500 and 1.5 times for
        # one alert (measured with SQLite 3.40). A file made with the older table keeps it.
        "feed": [
            f"""CREATE TABLE IF NOT EXISTS {feed} (
                feed_id TEXT NOT NULL, ts TEXT NOT NULL, expires_at INTEGER NOT NULL,
                digest TEXT, doc TEXT NOT NULL, PRIMARY KEY (feed_id, ts))""",
            f'CREATE INDEX IF NOT EXISTS "{names["feed"]}-by-expiry" ON {feed} (expires_at)',
        ],
    }


class Database:
    """Per-thread connections to one SQLite file, with errors mapped to ``StoreError``."""

    def __init__(self, path: str | Path, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._all: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._all_lock = threading.Lock()

    def connection(self, create: bool = False) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        conn = self._open(create)
        self._local.conn = conn
        with self._all_lock:
            self._all.add(conn)
        return conn

    def _open(self, create: bool) -> sqlite3.Connection:
        if create:
            self._make_parent()
        uri = self.path.resolve().as_uri() + ("?mode=rwc" if create else "?mode=rw")
        try:
            conn = sqlite3.connect(
                uri,
                uri=True,
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,  # transactions are explicit: BEGIN IMMEDIATE for writes
                check_same_thread=False,
                factory=_Connection,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            # NOTE: the default 4 KiB pages are kept on purpose. 16 KiB pages cut the CPU of
            # writing 500 alerts in one transaction by about a fifth, but made the one-alert
            # commit of most API requests about 50% more costly (measured with SQLite 3.40).
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints in WAL mode
        except sqlite3.Error as exc:
            raise self._unavailable(exc, "open") from exc
        logger.debug("opened %s on thread %s", self.path, threading.get_ident())
        return conn

    def _make_parent(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(
                f"cannot create the folder of the SQLite file {self.path}: {exc}; "
                "set OPSFORGE_SQLITE_PATH to a writable location"
            ) from exc

    def close(self) -> None:
        with self._all_lock:
            connections = list(self._all)
            self._all.clear()
        for conn in connections:
            conn.close()
        self._local = threading.local()

    @contextmanager
    def reading(self, target: str) -> Iterator[sqlite3.Connection]:
        """Yield this thread's connection; map SQLite errors on ``target`` (table and key)."""
        try:
            yield self.connection()
        except sqlite3.Error as exc:
            raise self.error(exc, target) from exc

    @contextmanager
    def writing(self, target: str, create: bool = False) -> Iterator[sqlite3.Connection]:
        """Run the block in one ``BEGIN IMMEDIATE`` transaction, rolled back on any error."""
        try:
            conn = self.connection(create)
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self.error(exc, target) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self.error(exc, target) from exc
            raise

    def error(self, exc: sqlite3.Error, target: str) -> StoreError:
        """Translate a ``sqlite3`` error on ``target`` into the project's exception."""
        message = str(exc).lower()
        if "no such table" in message:
            return StoreUnavailableError(
                f"{target}: the table is missing in {self.path}; {INIT_HINT}"
            )
        if isinstance(exc, sqlite3.OperationalError) and (
            "locked" in message
            or "busy" in message
            or "unable to open" in message
            or "readonly" in message
            or "disk i/o" in message
        ):
            return self._unavailable(exc, target)
        return StoreError(f"{target}: SQLite failed on {self.path}: {exc}")

    def _unavailable(self, exc: sqlite3.Error, target: str) -> StoreUnavailableError:
        message = str(exc).lower()
        if "locked" in message or "busy" in message:
            return StoreUnavailableError(
                f"{target}: {self.path} stayed locked by another writer for longer than the "
                f"{self.busy_timeout_ms} ms busy timeout; retry, or stop the process that holds "
                "the write lock"
            )
        if "readonly" in message:
            return StoreUnavailableError(
                f"{target}: {self.path} is read-only; make it writable or set OPSFORGE_SQLITE_PATH "
                "to a writable file"
            )
        if not self.path.exists():
            return StoreUnavailableError(
                f"{target}: the SQLite file {self.path} does not exist; {INIT_HINT} "
                "or set OPSFORGE_SQLITE_PATH"
            )
        return StoreUnavailableError(
            f"{target}: cannot open the SQLite file {self.path} ({exc}); check that it is a "
            "writable SQLite database or set OPSFORGE_SQLITE_PATH"
        )
