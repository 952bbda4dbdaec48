"""A two-minute soak of the Live page: the console keeps rendering and its memory stays flat.

``python -m bench.soak`` runs the same loop for 30 minutes; this short version catches a page
that stops refreshing or a fast leak.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.soak import CHROMIUM, GROWTH_TARGET_MB, run_soak

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_live_page_two_minute_soak() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; install Debian's chromium package")
    args = argparse.Namespace(minutes=2.0, warmup=1.0, interval=15.0, speed=60.0, json=True)

    result = run_soak(args)

    assert len(result.samples) >= 6
    assert result.page_failures == 0, result.samples
    assert result.growth_mb is not None
    assert result.growth_mb < GROWTH_TARGET_MB, result.samples
