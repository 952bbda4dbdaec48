"""AWS region codes from the display names that CloudWatch writes into SNS alarm messages."""

from __future__ import annotations

import logging
from functools import lru_cache

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _codes_by_name() -> dict[str, str]:
    # botocore ships every partition's regions with their display names, e.g.
    # "us-east-1": {"description": "US East (N. Virginia)"}.
    from botocore.loaders import Loader

    codes: dict[str, str] = {}
    try:
        endpoints = Loader().load_data("endpoints")
    except Exception as exc:  # noqa: BLE001 - any loader failure only loses the mapping
        logger.warning("could not load botocore's region names: %s", exc)
        return codes
    for partition in endpoints.get("partitions", []):
        for code, region in partition.get("regions", {}).items():
            codes[region.get("description", code)] = code
    return codes


def region_code(name: str) -> str:
    """Return the region code for a display name, or ``name`` itself if it is not one."""
    return _codes_by_name().get(name, name)
