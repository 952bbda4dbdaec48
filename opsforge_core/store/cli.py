"""Table management behind ``python -m opsforge_core store init|describe``."""

from __future__ import annotations

import logging
from typing import Any

from opsforge_core.config import Settings
from opsforge_core.store.base import Store

logger = logging.getLogger(__name__)


def _open(settings: Settings) -> Store:
    # open_store would create SQLite tables itself; init_tables reports what it created, so it
    # builds the backend without that step.
    if settings.store == "dynamodb":
        from opsforge_core.store.dynamodb import DynamoDBStore

        return DynamoDBStore.from_settings(settings)
    from opsforge_core.store.sqlite import SQLiteStore

    return SQLiteStore(settings.sqlite_path, settings.table_prefix, settings.feed_ttl_hours)


def init_tables(settings: Settings) -> list[str]:
    """Create the configured backend's missing tables; return the names created."""
    store = _open(settings)
    try:
        created = store.init()
    finally:
        store.close()
    logger.info("store %s: created %d tables", settings.store, len(created))
    return created


def describe(settings: Settings) -> list[dict[str, Any]]:
    """Return each table's name, key schema, indexes and approximate item count."""
    store = _open(settings)
    try:
        store.check()
        return [
            {
                "name": info.name,
                "key_schema": info.key_schema,
                "item_count": info.item_count,
                "indexes": info.indexes,
                **info.extra,
            }
            for info in store.describe_tables()
        ]
    finally:
        store.close()
