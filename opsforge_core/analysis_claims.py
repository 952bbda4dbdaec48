"""Claims that let a redelivered alert restart an analysis whose incident was never stored.

The delivery that first stores a serious firing alert starts its analysis. When that analysis
fails to store its incident, the sender retries (EventBridge, Alertmanager), but the retry
finds the alert unchanged and, without a record of the failure, would never analyze it. A claim
per alert in the agent-knowledge table records the attempt: ``pending`` while the analysis
runs, ``failed`` when it raised, deleted once the incident is stored. A retry analyzes again an
alert whose claim failed, or has stayed pending longer than the stale limit (the process died).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from opsforge_core.errors import StoreError
from opsforge_core.models import Alert, KnowledgeItem, utcnow
from opsforge_core.store.base import Store

logger = logging.getLogger(__name__)

CLAIM_AGENT = "ingest"
PENDING = "pending"
FAILED = "failed"


def claim_key(alert: Alert) -> str:
    return f"analysis:{alert.fingerprint}"


def unfinished(store: Store, alerts: list[Alert], stale_after: timedelta) -> list[Alert]:
    """Return the alerts whose last analysis failed or was abandoned."""
    now = utcnow()
    found = []
    for alert in alerts:
        item = store.get_knowledge(CLAIM_AGENT, claim_key(alert))
        if item is None:
            continue
        state = item.value.get("state")
        if state == FAILED or (state == PENDING and _older(item.updated_at, now, stale_after)):
            found.append(alert)
    return found


def mark(store: Store, alerts: list[Alert], state: str, detail: str = "") -> None:
    """Record ``state`` for each alert's analysis; raises ``StoreError`` if a write fails."""
    now = utcnow()
    for alert in alerts:
        value = {"state": state, "detail": detail, "service": alert.service}
        store.put_knowledge(KnowledgeItem(CLAIM_AGENT, claim_key(alert), value, now))


def mark_failed(store: Store, alerts: list[Alert], reason: str) -> None:
    """Record a failed analysis; a failing store leaves the pending claim to go stale."""
    try:
        mark(store, alerts, FAILED, reason)
    except StoreError as exc:
        logger.warning("recording the failed analysis of %d alerts failed: %s", len(alerts), exc)


def release(store: Store, alerts: list[Alert]) -> None:
    """Delete the claims after the incident is stored; a leftover claim only costs a read."""
    for alert in alerts:
        try:
            store.delete_knowledge(CLAIM_AGENT, claim_key(alert))
        except StoreError as exc:
            logger.warning("releasing the claim on %s failed: %s", alert.fingerprint, exc)


def _older(when: datetime, now: datetime, limit: timedelta) -> bool:
    return now - when > limit
