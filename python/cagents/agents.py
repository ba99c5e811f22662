"""Agents: the original package's classes, on the C engine's clients.

An agent is a client and a system prompt; ``run`` streams ChatResponse
pieces (an async generator), ``run_sync`` collects them, and
``get_full_response`` joins their text. Subclass ``BaseAgent`` with a
``system_prompt`` and, if you like, your own ``run``: the blocking calls go
through it. The built-in prompts are the C library's (``ag_agent_prompt``),
so that an agent asks the same in C, in the CLI and here.
"""

from __future__ import annotations

from typing import Any, AsyncGenerator, Dict, Iterable, List, Optional, Union

from . import _native as N
from .ollama_framework import BaseOllamaClient, ChatMessage, ChatResponse, run_blocking

__all__ = ["BaseAgent", "ChatAgent", "CodingAgent", "ReasoningAgent", "ResearchAgent", "SummarizationAgent",
           "EmbeddingAgent"]


def _prompt(kind: str) -> Optional[str]:
    p = N.ag_agent_prompt(kind.encode())
    return p.decode() if p else None


class BaseAgent:
    """An agent on a client. ``system_prompt`` (a class attribute, or given
    here) goes first in every conversation it sends."""

    system_prompt: Optional[str] = None

    def __init__(self, client: BaseOllamaClient, system_prompt: Optional[str] = None) -> None:
        self.client = client
        if system_prompt is not None:
            self.system_prompt = system_prompt

    async def run(self, messages: Iterable[Union[ChatMessage, Dict[str, Any]]],
                  **options: Any) -> AsyncGenerator[ChatResponse, None]:
        """Streams the answer; options (temperature, top_p, max_tokens, stream,
        any model option) go to the client's chat."""
        message_list = list(messages)
        if self.system_prompt:
            message_list.insert(0, {"role": "system", "content": self.system_prompt})
        async for chunk in self.client.chat(message_list, **options):
            yield chunk

    def run_sync(self, messages: Iterable[Union[ChatMessage, Dict[str, Any]]],
                 **options: Any) -> List[ChatResponse]:
        """Every piece of the answer (blocking; also from inside a coroutine)."""
        messages = list(messages)

        async def collect() -> List[ChatResponse]:
            return [chunk async for chunk in self.run(messages, **options)]

        return run_blocking(collect)

    def get_full_response(self, messages: Iterable[Union[ChatMessage, Dict[str, Any]]],
                          **options: Any) -> str:
        """The whole answer as one string (blocking)."""
        return "".join(chunk.content for chunk in self.run_sync(messages, **options))


class ChatAgent(BaseAgent):
    """The model as it is: no system prompt."""

    system_prompt: Optional[str] = None


class CodingAgent(BaseAgent):
    """Answers with code in fenced blocks."""

    system_prompt: Optional[str] = _prompt("coding")


class ReasoningAgent(BaseAgent):
    """Works through a question step by step in its answer."""

    system_prompt: Optional[str] = _prompt("reasoning")


class ResearchAgent(BaseAgent):
    """A structured, thorough answer that keeps facts apart from hypotheses."""

    system_prompt: Optional[str] = _prompt("research")


class SummarizationAgent(BaseAgent):
    """Condenses what it is given, keeping the key points."""

    system_prompt: Optional[str] = _prompt("summarization")


class EmbeddingAgent(BaseAgent):
    """``run`` embeds the messages' contents joined by blank lines and yields
    one ChatResponse with the vector in ``metadata["embedding"]``."""

    async def run(self, messages: Iterable[Union[ChatMessage, Dict[str, Any]]],
                  **options: Any) -> AsyncGenerator[ChatResponse, None]:
        combined = "\n\n".join(m.content if isinstance(m, ChatMessage) else str(m.get("content", ""))
                               for m in messages)
        vector = await self.client.generate_embedding(combined)
        yield ChatResponse(content="", role="embedding", done=True, metadata={"embedding": vector})
