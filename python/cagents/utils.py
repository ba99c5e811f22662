"""The original package's utilities. The text helpers are the C library's
(agents/text.h), so they give the same numbers everywhere."""

from __future__ import annotations

import json
import logging
import time
from ctypes import c_void_p, byref
from typing import Any, Dict, List, Optional, Union

from . import _native as N

logger = logging.getLogger(__name__)

__all__ = ["parse_json_response", "check_node_health", "retry_with_backoff", "format_chat_history",
           "estimate_tokens", "truncate_to_token_limit", "merge_response_chunks", "node_health"]


def parse_json_response(text: str, strict: bool = False) -> Optional[Any]:
    """JSON from a model's answer: the whole text, else a fenced block (which
    wins over brackets in the prose), else an object in the text, repairing
    trailing commas, Python literals and single quotes. strict: the whole text
    must be JSON, else ValueError. None when nothing parses (not strict)."""
    if not text or not text.strip():
        if strict:
            raise ValueError("Empty text provided")
        return None
    raw = N.enc(text)
    out = c_void_p()
    rc = N.ag_json_extract(raw, len(raw), N.AG_JSON_STRICT if strict else N.AG_JSON_LENIENT, byref(out))
    if rc != 0:
        if strict:
            raise ValueError(f"Could not parse JSON from text: {text[:100]}...")
        return None
    return json.loads(N.take_string(out.value))


def node_health(url: str, timeout: float = 2.0) -> Dict[str, Any]:
    """A node's health: {"up", "version", "rtt_ms", "error"} (blocking, bounded by timeout)."""
    from .ollama_framework import _mapped

    h = N.NodeHealth()
    N.ag_node_health_check(N.enc(_mapped(url)), float(timeout), byref(h))
    return {"up": bool(h.up), "version": h.version.decode(), "rtt_ms": h.rtt_ms,
            "error": h.error.decode() or None}


def check_node_health(url: str, timeout: float = 2.0) -> bool:
    """True when the node at url answers within timeout seconds."""
    return node_health(url, timeout)["up"]


def retry_with_backoff(func, max_retries: int = 3, initial_delay: float = 1.0, backoff_factor: float = 2.0,
                       exceptions: tuple = (Exception,)):
    """Calls func until it returns, at most max_retries + 1 times, sleeping
    initial_delay seconds after the first failure and backoff_factor times
    longer after each next one; the last exception is raised. (For requests,
    the C library's own retries: ``retries`` in the request options.)"""
    delay = initial_delay
    for attempt in range(max_retries + 1):
        try:
            return func()
        except exceptions as e:
            if attempt == max_retries:
                logger.error("all %d attempts failed", max_retries + 1)
                raise
            logger.warning("attempt %d failed: %s; again in %ss", attempt + 1, e, delay)
            time.sleep(delay)
            delay *= backoff_factor


def _role_content(m) -> Optional[tuple]:
    if hasattr(m, "role"):
        return m.role, m.content
    if isinstance(m, dict):
        return m.get("role", "unknown"), m.get("content", "")
    return None


def format_chat_history(messages: List[Union[Dict[str, str], Any]], max_length: Optional[int] = None) -> str:
    """"ROLE: content" a line; contents cut to max_length characters plus "..."."""
    pairs = [rc for rc in (_role_content(m) for m in messages) if rc is not None]
    keep = []
    arr = (N.Message * max(len(pairs), 1))()
    for i, (role, content) in enumerate(pairs):
        r, c = N.enc(str(role)), N.enc(str(content))
        keep += [r, c]
        arr[i].role, arr[i].content = r, c
    return N.take_string(N.ag_format_chat_history(arr, len(pairs), int(max_length or 0))) or ""


def estimate_tokens(text: str) -> int:
    """About 4 characters a token: len(text) // 4."""
    return int(N.ag_estimate_tokens(N.enc(text)))


def truncate_to_token_limit(text: str, token_limit: int, chars_per_token: int = 4) -> str:
    """text cut to token_limit * chars_per_token characters, "..." when cut."""
    return N.take_string(N.ag_truncate_to_tokens(N.enc(text), int(token_limit), int(chars_per_token))) or ""


def merge_response_chunks(chunks: List[Any]) -> str:
    """The text of response pieces (ChatResponse, dicts with "content", strings) joined."""
    parts = []
    for c in chunks:
        if hasattr(c, "content"):
            parts.append(c.content)
        elif isinstance(c, dict) and "content" in c:
            parts.append(c["content"])
        elif isinstance(c, str):
            parts.append(c)
    return "".join(parts)
