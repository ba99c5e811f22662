"""cagents - the original ``agents`` package's API on the libagents C engine.

Code written for the Python package ``agents`` (L'Agent) runs with its import
changed::

    from cagents import LocalOllamaClient, ChatAgent

    client = LocalOllamaClient("llama3:latest", "http://localhost:11434")
    print(ChatAgent(client).get_full_response([{"role": "user", "content": "Hello!"}]))

Streams are async generators that never block the event loop; a cancelled
task cancels its request; any number of requests run at once on one client;
the blocking calls work from scripts and from inside a running loop.
``DistributedOllamaClient`` is the library's pool: routing, health, failover.
"""

from .ollama_framework import (BaseOllamaClient, ChatMessage, ChatResponse, DistributedOllamaClient,
                               LocalOllamaClient)
from .agents import (BaseAgent, ChatAgent, CodingAgent, EmbeddingAgent, ReasoningAgent, ResearchAgent,
                     SummarizationAgent)
from .utils import (check_node_health, estimate_tokens, format_chat_history, merge_response_chunks, node_health,
                    parse_json_response, retry_with_backoff, truncate_to_token_limit)
from .providers import LlamaCppClient, LMStudioClient, LocalAIClient, TextGenWebUIClient, VLLMClient
from ._native import AgentsError

__version__ = "0.1.0"

__all__ = [
    "BaseOllamaClient", "LocalOllamaClient", "DistributedOllamaClient",
    "ChatMessage", "ChatResponse",
    "BaseAgent", "ChatAgent", "CodingAgent", "ReasoningAgent", "ResearchAgent", "SummarizationAgent",
    "EmbeddingAgent",
    "LlamaCppClient", "VLLMClient", "TextGenWebUIClient", "LocalAIClient", "LMStudioClient",
    "parse_json_response", "check_node_health", "retry_with_backoff", "format_chat_history",
    "estimate_tokens", "truncate_to_token_limit", "merge_response_chunks", "node_health",
    "AgentsError",
]
