"""A 90-second soak of the Live page: the console keeps rendering and its memory stays flat.

``python -m bench.soak`` runs the same loop for 30 minutes; this short version catches a page
that stops refreshing or a fast leak.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.soak import CHROMIUM, GROWTH_TARGET_MB, run_soak

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_live_page_short_soak() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; install Debian's chromium package")
    args = argparse.Namespace(minutes=1.5, warmup=0.5, interval=10.0, speed=60.0, json=True)

    result = run_soak(args)

    assert len(result.samples) >= 7
    assert result.page_failures == 0, result.samples
    assert result.refreshes_seen == len(result.samples) - 1, result.samples
    assert result.growth_mb is not None
    assert result.growth_mb < GROWTH_TARGET_MB, result.samples
