"""Other local servers through their OpenAI-compatible API (the original
package had stubs for these): the same client, the node spoken to in the
OpenAI dialect ("openai+http://..."), with each server's usual address."""

from __future__ import annotations

from typing import Optional

from . import _native as N
from .ollama_framework import LocalOllamaClient, _mapped

__all__ = ["LlamaCppClient", "VLLMClient", "TextGenWebUIClient", "LocalAIClient", "LMStudioClient"]


class _OpenAIClient(LocalOllamaClient):
    default_base = "http://localhost:8080"

    def __init__(self, model_name: str, api_base: Optional[str] = None, embed_model: Optional[str] = None,
                 keep_alive: Optional[str] = None) -> None:
        super().__init__(model_name, api_base or self.default_base, embed_model=embed_model, keep_alive=keep_alive)

    def _host(self) -> str:
        h = _mapped(self.api_base)
        return h if h.startswith("openai+") else "openai+" + (h if "://" in h else "http://" + h)

    async def generate_embedding(self, text: str):
        # /v1/embeddings (the legacy Ollama route does not exist there)
        if not text.strip():
            return []
        from ctypes import c_char_p

        keep = [N.enc(self.embed_model), N.enc(text)]
        p = N.EmbedParams()
        p.model = keep[0]
        p.inputs = (c_char_p * 1)(keep[1])
        p.n_inputs = 1
        p.truncate = -1
        req = self._eng().start_embed(p)
        try:
            while True:
                item = await req.next()
                if item[0] == "done":
                    if item[1] != 0:
                        raise N.AgentsError(item[1], f"Embedding request failed: {item[2].get('error')}")
                    vecs = item[2].get("embeddings") or [[]]
                    return list(vecs[0])
        finally:
            req.release()


class LlamaCppClient(_OpenAIClient):
    """llama.cpp's server (llama-server), default http://localhost:8080."""

    default_base = "http://localhost:8080"


class VLLMClient(_OpenAIClient):
    """vLLM's OpenAI-compatible server, default http://localhost:8000."""

    default_base = "http://localhost:8000"


class TextGenWebUIClient(_OpenAIClient):
    """Text Generation WebUI's OpenAI-compatible API, default http://localhost:5000."""

    default_base = "http://localhost:5000"


class LocalAIClient(_OpenAIClient):
    """LocalAI, default http://localhost:8080."""

    default_base = "http://localhost:8080"


class LMStudioClient(_OpenAIClient):
    """LM Studio's local server, default http://localhost:1234."""

    default_base = "http://localhost:1234"
