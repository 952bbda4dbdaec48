"""Patterns and Knowledge: browse the pattern library and the agents' knowledge tables."""

from __future__ import annotations

import logging
from collections.abc import Callable

import streamlit as st

from console._data import follow_pages
from console._shared import env_key, failure_shown, get_store, init_state
from opsforge_core.models import KnowledgeItem, Pattern
from opsforge_core.views import (
    escape_markdown,
    knowledge_rows,
    pattern_matches,
    pattern_rows,
    table_info_rows,
)

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
TTL_SECONDS = 10
KNOWN_AGENTS = ["all", "alertops", "predictiveops", "rootcause", "orchestrator"]


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def _tables(key: tuple[tuple[str, str], ...]) -> list[dict]:
    return table_info_rows(get_store().describe_tables())


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False, max_entries=32)
def _patterns(
    key: tuple[tuple[str, str], ...], cursor: str | None
) -> tuple[list[Pattern], str | None]:
    page = get_store().list_patterns(limit=PAGE_SIZE, cursor=cursor)
    return page.items, page.cursor


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False, max_entries=32)
def _knowledge(
    key: tuple[tuple[str, str], ...], agent: str | None, cursor: str | None
) -> tuple[list[KnowledgeItem], str | None]:
    page = get_store().list_knowledge(agent_name=agent, limit=PAGE_SIZE, cursor=cursor)
    return page.items, page.cursor


def paged(state_key: str, fetch: Callable, scope: object) -> tuple[list, bool]:
    """Load as many pages as the operator asked for with "Load more", along the cursor.

    ``scope`` identifies the query (for example the agent filter); a new scope starts over
    at one page. Returns the items and whether the store has more.
    """
    state = st.session_state
    if f"{state_key}-pages" not in state or state.get(f"{state_key}-scope") != scope:
        state.update({f"{state_key}-scope": scope, f"{state_key}-pages": 1})
    items, more = follow_pages(fetch, state[f"{state_key}-pages"])
    if st.button("Load more", key=f"{state_key}-more", disabled=not more):
        state[f"{state_key}-pages"] += 1
        st.rerun()
    return items, more


def patterns_tab() -> None:
    text = st.text_input("Filter loaded patterns by alert, service or root cause", key="pat-text")
    items, more = paged("pat", lambda c: _patterns(env_key(), c), "all")
    # NOTE: the filter applies to the pages loaded so far; "Load more" brings the rest in.
    shown = [p for p in items if pattern_matches(p, text)]
    st.caption(f"{len(shown)} of {len(items)} loaded" + (" (more in the store)" if more else ""))
    if not shown:
        st.info("No patterns yet: each analysis records its alert signature here.")
        return
    st.dataframe(pattern_rows(shown), hide_index=True, key="pat-table")
    by_id = {p.pattern_id: p for p in shown}
    chosen = st.selectbox(
        "Pattern",
        list(by_id),
        key="pat-selected",
        format_func=lambda i: f"{by_id[i].root_cause or '?'} · {by_id[i].occurrences}x · {i}",
    )
    st.json(by_id[chosen].to_dict())
    confirm = st.checkbox("I want to delete this pattern", key=f"pat-confirm-{chosen}")
    if st.button("Delete pattern", key="pat-delete", disabled=not confirm, type="primary"):
        deleted = get_store().delete_pattern(chosen)
        _patterns.clear()
        _tables.clear()
        st.session_state["pat-message"] = (
            f"Pattern {chosen} deleted." if deleted else f"Pattern {chosen} was already gone."
        )
        st.rerun()


def knowledge_tab() -> None:
    left, right = st.columns(2)
    agent = left.selectbox("Agent", KNOWN_AGENTS, key="kn-agent")
    text = right.text_input("Filter loaded items by key", key="kn-text").strip().lower()
    scope = None if agent == "all" else agent
    items, more = paged("kn", lambda c: _knowledge(env_key(), scope, c), scope)
    shown = [i for i in items if text in i.knowledge_key.lower()]
    st.caption(f"{len(shown)} of {len(items)} loaded" + (" (more in the store)" if more else ""))
    if not shown:
        st.info("No knowledge items for this filter yet.")
        return
    st.dataframe(knowledge_rows(shown), hide_index=True, key="kn-table")
    keys = {f"{i.agent_name}/{i.knowledge_key}": i for i in shown}
    chosen = st.selectbox("Item", list(keys), key="kn-selected")
    st.json(keys[chosen].to_dict())


st.title("Patterns and Knowledge")
init_state({"pat-message": None})
if st.session_state["pat-message"]:
    st.success(escape_markdown(st.session_state["pat-message"]))
    st.session_state["pat-message"] = None
with failure_shown("Describing the tables"):
    st.dataframe(_tables(env_key()), hide_index=True, key="tables")
patterns, knowledge = st.tabs(["Pattern library", "Agent knowledge"])
with patterns, failure_shown("Reading the pattern library"):
    patterns_tab()
with knowledge, failure_shown("Reading the agent knowledge"):
    knowledge_tab()
