"""Persistence: the ``Store`` interface and ``open_store``, which picks the backend.

``OPSFORGE_STORE=sqlite`` (the default) opens the SQLite file and creates its tables on first
use, so the console works with no set-up. ``OPSFORGE_STORE=dynamodb`` opens the DynamoDB
tables, which ``python -m opsforge_core store init`` creates.
"""

from __future__ import annotations

from opsforge_core.config import Settings
from opsforge_core.store.base import (
    ALERT_FEED,
    METRIC_FEED,
    AlertUpsert,
    IncidentFilter,
    Page,
    Store,
    TableInfo,
)

__all__ = [
    "ALERT_FEED",
    "METRIC_FEED",
    "AlertUpsert",
    "IncidentFilter",
    "Page",
    "Store",
    "TableInfo",
    "open_store",
]


def open_store(settings: Settings | None = None, client: object | None = None) -> Store:
    """Open the backend that ``settings.store`` names.

    SQLite tables are created if missing, because SQLite is the zero-set-up default. DynamoDB
    tables are not: a missing one raises ``StoreUnavailableError`` on first use, naming the
    command that creates it. ``client`` is an optional boto3 DynamoDB client to use instead of
    one built from the settings.
    """
    settings = settings or Settings.from_env()
    if settings.store == "dynamodb":
        from opsforge_core.store.dynamodb import DynamoDBStore

        return DynamoDBStore.from_settings(settings, client=client)
    from opsforge_core.store.sqlite import SQLiteStore

    store = SQLiteStore(
        settings.sqlite_path,
        table_prefix=settings.table_prefix,
        feed_ttl_hours=settings.feed_ttl_hours,
    )
    store.init()
    return store
