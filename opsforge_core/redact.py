"""Removal of secrets from text that reaches logs, error messages, stored records or the console.

A provider may echo the credential it rejected in its error message ("invalid x-api-key
sk-ant-..."), and that message becomes a fallback reason shown to operators and stored on the
incident. Known secret values from the environment and key-shaped tokens are masked.
"""

from __future__ import annotations

import os
import re

SECRET_VARIABLES = (
    "ANTHROPIC_API_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "OPSFORGE_API_TOKEN",
)
# Anthropic keys start with "sk-ant-"; AWS access key ids with "AKIA" or "ASIA".
_KEY_SHAPES = re.compile(r"sk-ant-[A-Za-z0-9_\-]{4,}|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
MASK = "[redacted]"


def redact(text: str) -> str:
    """Return ``text`` with secret values from the environment and key-shaped tokens masked."""
    for name in SECRET_VARIABLES:
        value = os.environ.get(name)
        # Very short values would mask ordinary words; real secrets are far longer.
        if value and len(value) >= 8:
            text = text.replace(value, MASK)
    return _KEY_SHAPES.sub(MASK, text)
