"""Load the Lambda handler from deploy/sam and point it at a temporary SQLite store."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

HANDLER_PATH = Path(__file__).resolve().parents[2] / "deploy" / "sam" / "lambda_handler.py"


@pytest.fixture(scope="session")
def handler_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("opsforge_lambda_handler", HANDLER_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def lambda_env(
    handler_module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    """The handler module with a fresh runtime on a temporary SQLite file."""
    monkeypatch.setenv("OPSFORGE_STORE", "sqlite")
    monkeypatch.setenv("OPSFORGE_SQLITE_PATH", str(tmp_path / "opsforge.db"))
    monkeypatch.setenv("OPSFORGE_LLM_PROVIDER", "offline")
    monkeypatch.delenv("OPSFORGE_AUTO_ANALYZE", raising=False)
    handler_module.set_runtime()
    yield handler_module
    handler_module.set_runtime()
