"""Shrink an incident document that does not fit a backend's item size limit.

Trimming goes from what the operator needs least to most, and stops as soon as the document
fits: raw alert payloads (largest first), then long texts (longest first, cut to a few KB with
a marker), then alerts beyond the first ones, then agent findings. Each step adds a line to
the document's ``notes`` saying what the stored copy lost, so a reader sees it on the report.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

from opsforge_core.errors import ValidationError
from opsforge_core.store.codec import item_size

logger = logging.getLogger(__name__)

Fits = Callable[[dict[str, Any]], bool]

# Texts are cut to these lengths in turn, longest texts first.
TEXT_CAPS = (16384, 4096, 1024)
# Alerts kept when even short texts do not fit, in turn.
ALERT_CAPS = (1000, 250, 50)


def trim_incident(document: dict[str, Any], fits: Fits, limit_text: str) -> dict[str, Any]:
    """Return a trimmed copy of ``document`` for which ``fits`` is True.

    ``limit_text`` names the limit in the notes ("DynamoDB's 400 KB item limit"). Raises
    ``ValidationError`` when even the smallest form does not fit.
    """
    if fits(document):
        return document
    doc = copy.deepcopy(document)
    doc["notes"] = list(doc.get("notes") or [])
    for step in (_drop_raw_payloads, _shorten_texts, _drop_alerts, _drop_findings):
        note = step(doc, fits)
        if note:
            doc["notes"].append(f"stored copy trimmed to fit {limit_text}: {note}")
            logger.debug("incident %s trimmed: %s", doc.get("incident_id"), note)
        if fits(doc):
            return _restore_raw_payloads(doc, document, fits)
    raise ValidationError(
        f"incident {doc.get('incident_id')!r} does not fit {limit_text} even after trimming"
    )


def _drop_raw_payloads(doc: dict[str, Any], fits: Fits) -> str | None:
    alerts = doc.get("alerts") or []
    with_raw = [a for a in alerts if a.get("raw")]
    if not with_raw:
        return None
    with_raw.sort(key=lambda a: item_size({"raw": a["raw"]}), reverse=True)
    dropped = 0
    # Drop in doubling batches so a document with thousands of alerts needs few size checks.
    batch = 1
    while dropped < len(with_raw):
        for alert in with_raw[dropped : dropped + batch]:
            alert.pop("raw", None)
        dropped = min(dropped + batch, len(with_raw))
        batch *= 2
        if fits(doc):
            break
    return f"removed the raw payloads of {dropped} of {len(alerts)} alerts (largest first)"


def _restore_raw_payloads(
    doc: dict[str, Any], original: dict[str, Any], fits: Fits
) -> dict[str, Any]:
    """Put the raw payloads back when a later step made room, as with one huge text.

    NOTE: all or nothing; when only some payloads would fit again, all stay removed.
    """
    raw_note = next((n for n in doc["notes"] if "removed the raw payloads" in n), None)
    if raw_note is None or len(doc.get("alerts") or []) != len(original.get("alerts") or []):
        return doc
    restored = copy.deepcopy(doc)
    for alert, source in zip(restored["alerts"], original["alerts"], strict=True):
        if source.get("raw") is not None:
            alert["raw"] = copy.deepcopy(source["raw"])
    restored["notes"] = [n for n in restored["notes"] if n is not raw_note]
    return restored if fits(restored) else doc


def _shorten_texts(doc: dict[str, Any], fits: Fits) -> str | None:
    shortened: dict[str, int] = {}
    for cap in TEXT_CAPS:
        for path, length in _cut_strings(doc, cap, "$"):
            shortened[path] = max(length, shortened.get(path, 0))
        if fits(doc):
            break
    if not shortened:
        return None
    longest = sorted(shortened, key=shortened.get, reverse=True)
    named = ", ".join(f"{p} ({shortened[p]:,} characters)" for p in longest[:5])
    more = f" and {len(longest) - 5} more" if len(longest) > 5 else ""
    return f"shortened {len(longest)} long texts: {named}{more}"


def _cut_strings(node: Any, cap: int, path: str) -> list[tuple[str, int]]:
    """Cut every string longer than ``cap`` in place; return (path, original length) pairs."""
    cut: list[tuple[str, int]] = []
    if isinstance(node, dict):
        entries = list(node.items())
    elif isinstance(node, list):
        entries = list(enumerate(node))
    else:
        return cut
    for key, value in entries:
        if path == "$" and key == "notes":
            continue  # the trimming notes themselves are kept whole
        child = f"{path}.{key}" if isinstance(node, dict) else f"{path}[{key}]"
        if isinstance(value, str) and len(value) > cap:
            node[key] = value[:cap] + f" [… {len(value) - cap:,} more characters not stored]"
            cut.append((child, len(value)))
        else:
            cut.extend(_cut_strings(value, cap, child))
    return cut


def _drop_alerts(doc: dict[str, Any], fits: Fits) -> str | None:
    alerts = doc.get("alerts") or []
    total = len(alerts)
    for cap in ALERT_CAPS:
        if len(doc.get("alerts") or []) <= cap:
            continue
        doc["alerts"] = alerts[:cap]
        if fits(doc):
            break
    kept = len(doc.get("alerts") or [])
    if kept == total:
        return None
    return f"kept the first {kept} of {total} alerts; alert_count and fingerprints cover all"


def _drop_findings(doc: dict[str, Any], fits: Fits) -> str | None:
    emptied = []
    for result in doc.get("results") or []:
        if result.get("findings"):
            result["findings"] = {}
            emptied.append(str(result.get("agent")))
    if not emptied:
        return None
    return f"removed the structured findings of {', '.join(emptied)}"
