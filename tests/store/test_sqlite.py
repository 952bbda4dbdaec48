"""SQLite backend specifics: file handling, locking and several processes on one file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest

from opsforge_core.config import Settings
from opsforge_core.errors import StoreUnavailableError
from opsforge_core.store import open_store
from opsforge_core.store.sqlite import SQLiteStore
from tests.conftest import REPO_ROOT
from tests.store.factories import make_pattern, make_report


def test_open_store_creates_folder_and_tables(tmp_path):
    path = tmp_path / "nested" / "deeper" / "opsforge.db"
    store = open_store(Settings(sqlite_path=str(path)))
    assert isinstance(store, SQLiteStore)
    assert path.exists()
    store.check()
    store.close()


def test_wal_mode_and_busy_timeout(tmp_path):
    store = SQLiteStore(tmp_path / "opsforge.db", busy_timeout_ms=1234)
    store.init()
    conn = store.db.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
    store.close()


def test_missing_file_names_the_fix(tmp_path):
    store = SQLiteStore(tmp_path / "absent.db")
    with pytest.raises(StoreUnavailableError, match="does not exist.*store init"):
        store.list_incidents()
    assert not (tmp_path / "absent.db").exists()


def test_unwritable_folder_is_unavailable(tmp_path):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("a file where a folder should be")
    store = SQLiteStore(blocker / "opsforge.db")
    with pytest.raises(StoreUnavailableError, match="OPSFORGE_SQLITE_PATH"):
        store.init()


def test_not_a_database_is_unavailable(tmp_path):
    path = tmp_path / "opsforge.db"
    path.write_bytes(b"this is not a SQLite file" * 100)
    store = SQLiteStore(path)
    with pytest.raises(StoreUnavailableError, match=str(path)):
        store.init()


def test_locked_database_after_busy_timeout(tmp_path):
    path = tmp_path / "opsforge.db"
    SQLiteStore(path).init()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        store = SQLiteStore(path, busy_timeout_ms=100)
        with pytest.raises(StoreUnavailableError, match="locked.*100 ms busy timeout"):
            store.put_incident(make_report())
        # Readers are not blocked by the writer in WAL mode.
        assert store.get_incident("inc-0001") is None
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.put_incident(make_report())
    assert store.get_incident("inc-0001") is not None


_WORKER = textwrap.dedent(
    """
    import sys
    from opsforge_core.store.sqlite import SQLiteStore
    from tests.store.factories import BASE_TIME, make_pattern

    store = SQLiteStore(sys.argv[1])
    for n in range(int(sys.argv[2])):
        store.record_pattern_occurrence(make_pattern(), f"inc-{n}", BASE_TIME)
    """
)


def test_processes_share_file_without_lost_counts(tmp_path):
    path = tmp_path / "opsforge.db"
    store = SQLiteStore(path)
    store.init()
    store.put_pattern(make_pattern())
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(path), "25"], cwd=REPO_ROOT)
        for _ in range(3)
    ]
    for worker in workers:
        assert worker.wait(timeout=60) == 0
    assert store.get_pattern("pat-1").occurrences == 75


def test_close_then_reuse_reopens(tmp_path):
    store = SQLiteStore(tmp_path / "opsforge.db")
    store.init()
    store.put_incident(make_report())
    store.close()
    assert store.get_incident("inc-0001") is not None
