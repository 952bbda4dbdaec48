"""Invocation context and response checks shared by the Lambda handler tests."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any


def context(request_id: str = "lambda-req-1") -> SimpleNamespace:
    return SimpleNamespace(aws_request_id=request_id, function_name="opsforge")


def body_of(response: dict[str, Any]) -> dict[str, Any]:
    """Check the proxy response contract and return the decoded body."""
    assert isinstance(response["statusCode"], int)
    assert isinstance(response["body"], str)
    return json.loads(response["body"])


def load_event(events_dir: Path, name: str) -> dict[str, Any]:
    return json.loads((events_dir / name).read_text())
