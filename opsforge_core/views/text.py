"""Text helpers for showing untrusted strings (alert text, labels, LLM output) safely.

Streamlit renders ``st.markdown``, ``st.error`` and widget labels as Markdown with its own
extensions (``:red[...]`` colour directives, ``:material/...:`` icons, ``$...$`` LaTeX). Text
that came from outside must pass through ``escape_markdown`` before it reaches any of them.
"""

from __future__ import annotations

import re
import string

# CommonMark lets a backslash escape every ASCII punctuation character, so escaping all of them
# turns links, emphasis, HTML tags, colour directives and LaTeX delimiters into literal text.
_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
# GFM turns bare URLs into links after escapes are resolved, so a word joiner (U+2060, which
# renders as nothing) breaks the "://" and "www." patterns it looks for.
_SECRET_NAME = re.compile(r"(^|_)(token|secret|password|key|apikey)$", re.IGNORECASE)
_WORD_JOINER = "\u2060"
_AUTOLINKS = re.compile(r"(\\:)(\\/\\/)|(www)(\\\.)", re.IGNORECASE)


def escape_markdown(text: object) -> str:
    """Escape ``text`` so Markdown renders it literally; newlines become spaces.

    ``<`` and ``>`` are escaped like any other punctuation, so no HTML tag survives. Line breaks
    are flattened because a leading ``#`` or ``-`` on a new line would start a block, and bare
    URLs are kept from becoming links.
    """
    value = "" if text is None else str(text)
    value = " ".join(value.split())
    escaped = _PUNCTUATION.sub(r"\\\1", value)
    return _AUTOLINKS.sub(_break_autolink, escaped)


def _break_autolink(match: re.Match[str]) -> str:
    if match.group(1):
        return match.group(1) + _WORD_JOINER + match.group(2)
    return match.group(3) + _WORD_JOINER + match.group(4)


def shorten(text: object, limit: int = 120) -> str:
    """Return ``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    value = " ".join(("" if text is None else str(text)).split())
    if len(value) <= limit:
        return value
    return value[: max(0, limit - 1)] + "…"


def format_duration(seconds: float | None) -> str:
    """Format a number of seconds as a short age such as ``45s``, ``12m``, ``3h 5m``, ``2d 4h``."""
    if seconds is None:
        return "-"
    total = max(0, int(seconds))
    if total < 60:
        return f"{total}s"
    minutes, _ = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def mask_secret(name: str, value: object) -> object:
    """Return ``value`` as ``set`` or ``unset`` when ``name`` is a secret's name.

    A secret's name ends in token, secret, password or key (``api_token``,
    ``ANTHROPIC_API_KEY``); counts such as ``llm_max_tokens`` are shown as they are.
    """
    if not _SECRET_NAME.search(name):
        return value
    if value in (None, "", "unset"):
        return "unset"
    return "set"
