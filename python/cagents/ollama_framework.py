"""Clients: the original package's classes, on the C engine.

``LocalOllamaClient`` talks to one node, ``DistributedOllamaClient`` to a
pool of them (routing, health, failover and resume in the C library). Both
stream through an engine whose notification descriptor the running asyncio
loop watches: nothing blocks the loop, a cancelled task cancels its request,
and any number of requests run at once on one client.
"""

from __future__ import annotations

import abc
import asyncio
import json
import os
import threading
from ctypes import POINTER, c_char_p, pointer
from dataclasses import dataclass
from typing import Any, AsyncGenerator, Dict, Iterable, List, Optional, Sequence, Union

from . import _native as N

__all__ = ["ChatMessage", "ChatResponse", "BaseOllamaClient", "LocalOllamaClient", "DistributedOllamaClient"]


@dataclass
class ChatMessage:
    """A chat message: ``role`` ("user", "assistant", "system", "tool") and ``content``."""

    role: str
    content: str


@dataclass
class ChatResponse:
    """A piece of an answer. The last one of a stream has ``done=True`` and the
    server's figures (eval_count, durations) in ``metadata``, with
    ``node_url``: the node that answered."""

    content: str
    role: str = "assistant"
    done: bool = False
    metadata: Dict[str, Any] = None

    def __post_init__(self) -> None:
        if self.metadata is None:
            self.metadata = {}


# makes a client's engine once when several threads call at once
_make_lock = threading.Lock()


def _reset_make_lock() -> None:
    global _make_lock
    _make_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_make_lock)


def run_blocking(coro_fn):
    """Runs the coroutine made by ``coro_fn()`` to completion from synchronous
    code: on a fresh event loop, or, when this thread already runs one (a
    blocking call made inside a coroutine), on a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_fn())
    box: Dict[str, Any] = {}

    def helper():
        try:
            box["value"] = asyncio.run(coro_fn())
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=helper, name="cagents-blocking")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


# node addresses rewritten by AGENTS_HOST_MAP ("from=to,from=to"): for code
# that names fixed addresses, run elsewhere (a test, a move to other hosts)
def _mapped(addr: str) -> str:
    spec = os.environ.get("AGENTS_HOST_MAP", "")
    if not spec:
        return addr
    bare = addr.split("://", 1)[-1].rstrip("/")
    for pair in spec.split(","):
        if "=" not in pair:
            continue
        src, dst = (x.strip() for x in pair.split("=", 1))
        if bare == src.split("://", 1)[-1].rstrip("/"):
            return dst
    return addr


def _message_dicts(messages: Iterable[Union[ChatMessage, Dict[str, Any]]]) -> List[Dict[str, Any]]:
    out = []
    for m in messages:
        if isinstance(m, ChatMessage):
            out.append({"role": m.role, "content": m.content})
        elif isinstance(m, dict):
            out.append(m)
        elif hasattr(m, "role") and hasattr(m, "content"):
            out.append({"role": m.role, "content": m.content})
        else:
            out.append({"role": "user", "content": str(m)})
    return out


class _Chat:
    """A chat request's C parameters, kept alive while the call copies them."""

    def __init__(self, model: str, messages: List[Dict[str, Any]], stream: bool, options: Dict[str, Any],
                 keep_alive: Optional[str], fmt: Any = None, think: Any = None):
        self.keep = []
        n = len(messages)
        arr = (N.Message * max(n, 1))()
        for i, m in enumerate(messages):
            arr[i].role = self._b(str(m.get("role", "user")))
            arr[i].content = self._b(str(m.get("content", "") or ""))
            if m.get("images"):
                imgs = [self._b(x) for x in m["images"]]
                iarr = (c_char_p * len(imgs))(*imgs)
                self.keep.append(iarr)
                arr[i].images = iarr
                arr[i].n_images = len(imgs)
            if m.get("tool_calls"):
                arr[i].tool_calls_json = self._b(json.dumps(m["tool_calls"]))
            if m.get("tool_name") or m.get("name"):
                arr[i].tool_name = self._b(m.get("tool_name") or m.get("name"))
        self.keep.append(arr)
        p = N.ChatParams()
        p.model = self._b(model)
        p.messages = arr
        p.n_messages = n
        if options:
            p.gen.options_json = self._b(json.dumps(options))
        if keep_alive is not None:
            p.gen.keep_alive = self._b(str(keep_alive))
        if fmt is not None:
            p.gen.format = self._b(fmt if isinstance(fmt, str) else json.dumps(fmt))
        if think is not None:
            p.gen.think = self._b(think if isinstance(think, str) else ("true" if think else "false"))
        p.gen.no_stream = 0 if stream else 1
        self.params = p

    def _b(self, s: str) -> bytes:
        b = N.enc(s)
        self.keep.append(b)
        return b


class BaseOllamaClient(abc.ABC):
    """The interface every client offers: embeddings and streamed chat, async
    with blocking wrappers. Subclass it for a backend of your own (implement
    ``generate_embedding`` and ``chat``)."""

    def __init__(self, model_name: str, embed_model: Optional[str] = None) -> None:
        self.model_name = model_name
        self.embed_model = embed_model or model_name

    @abc.abstractmethod
    async def generate_embedding(self, text: str) -> List[float]:
        """The embedding of text (an empty list for blank text)."""

    async def embeddings(self, text: str) -> List[float]:
        """Alias of generate_embedding."""
        return await self.generate_embedding(text)

    @abc.abstractmethod
    async def chat(self, messages: Iterable[Union[ChatMessage, Dict[str, Any]]], stream: bool = True,
                   temperature: Optional[float] = None, top_p: Optional[float] = None,
                   max_tokens: Optional[int] = None, **options: Any) -> AsyncGenerator[ChatResponse, None]:
        """Streams the answer to messages as ChatResponse pieces."""
        yield ChatResponse("")  # pragma: no cover

    def generate_embedding_sync(self, text: str) -> List[float]:
        return run_blocking(lambda: self.generate_embedding(text))

    def embeddings_sync(self, text: str) -> List[float]:
        return self.generate_embedding_sync(text)

    def chat_sync(self, messages: Iterable[Union[ChatMessage, Dict[str, Any]]], stream: bool = False,
                  **options: Any) -> List[ChatResponse]:
        """Every piece of the answer, collected (blocking)."""
        messages = list(messages)

        async def collect() -> List[ChatResponse]:
            return [c async for c in self.chat(messages, stream=stream, **options)]

        return run_blocking(collect)


class _EngineClient(BaseOllamaClient):
    """A client on a libagents engine (the one node or the pool)."""

    _engine: Optional[N.Engine] = None
    keep_alive: Optional[str] = None

    def _eng(self) -> N.Engine:
        # one engine for every thread that calls; a new one in a child
        # process after fork() (the parent's engine thread did not follow)
        eng = self._engine
        if eng is not None and not eng.dead:
            return eng
        with _make_lock:
            eng = self._engine
            if eng is None or eng.dead:
                eng = self._engine = self._make_engine()
        return eng

    @abc.abstractmethod
    def _make_engine(self) -> N.Engine: ...

    async def generate_embedding(self, text: str) -> List[float]:
        if not text.strip():
            return []
        keep = [N.enc(self.embed_model), N.enc(text)]
        inputs = (c_char_p * 1)(keep[1])
        p = N.EmbedParams()
        p.model = keep[0]
        p.inputs = inputs
        p.n_inputs = 1
        p.truncate = -1
        p.legacy = 1  # POST /api/embeddings with "prompt", as the original sends
        if self.keep_alive is not None:
            keep.append(N.enc(str(self.keep_alive)))
            p.keep_alive = keep[-1]
        req = self._eng().start_embed(p)
        try:
            while True:
                item = await req.next()
                if item[0] == "done":
                    status, info = item[1], item[2]
                    if status != 0:
                        raise N.AgentsError(status, f"Embedding request failed: {info.get('error') or N.strerror(status)}",
                                            info.get("http_status", 0))
                    vecs = info.get("embeddings") or []
                    if not vecs or not vecs[0]:
                        raise RuntimeError("Missing 'embedding' in response")
                    return list(vecs[0])
        finally:
            req.release()

    async def chat(self, messages: Iterable[Union[ChatMessage, Dict[str, Any]]], stream: bool = True,
                   temperature: Optional[float] = None, top_p: Optional[float] = None,
                   max_tokens: Optional[int] = None, **options: Any) -> AsyncGenerator[ChatResponse, None]:
        opts: Dict[str, Any] = {}
        if temperature is not None:
            opts["temperature"] = temperature
        if top_p is not None:
            opts["top_p"] = top_p
        if max_tokens is not None:
            opts["num_predict"] = max_tokens
        fmt = options.pop("format", None)
        think = options.pop("think", None)
        opts.update(options)
        c = _Chat(self.model_name, _message_dicts(messages), stream, opts, self.keep_alive, fmt, think)
        req = self._eng().start_chat(c.params)
        del c
        whole: List[str] = []  # stream=False: one piece, the whole answer, as the server sends it
        try:
            while True:
                item = await req.next()
                if item[0] == "chunk":
                    if not stream:
                        if item[1] == N.AG_CHUNK_CONTENT:
                            whole.append(item[2])
                    elif item[1] == N.AG_CHUNK_CONTENT:
                        yield ChatResponse(content=item[2])
                    elif item[1] == N.AG_CHUNK_THINKING:
                        yield ChatResponse(content="", metadata={"thinking": item[2]})
                    continue
                status, info = item[1], item[2]
                if status != 0:
                    raise N.AgentsError(status, f"Chat request failed: {info.get('error') or N.strerror(status)}",
                                        info.get("http_status", 0))
                meta = {k: info[k] for k in ("eval_count", "eval_duration", "total_duration", "load_duration")
                        if k in info}
                if info.get("node"):
                    meta["node_url"] = info["node"]
                yield ChatResponse(content="".join(whole), done=True, metadata=meta)
                return
        finally:
            req.release()  # a request still running (an abandoned stream, a cancelled task) is cancelled

    async def close(self) -> None:
        """Stops the engine: requests still running end at once, their
        readers raising AgentsError (ESHUTDOWN). A later call makes a new
        engine."""
        with _make_lock:
            eng, self._engine = self._engine, None
        if eng is not None:
            eng.close()

    def __del__(self):
        eng = self.__dict__.get("_engine")
        if eng is not None and not eng.dead:
            eng.close()


class LocalOllamaClient(_EngineClient):
    """One node. ``api_base`` as Ollama writes OLLAMA_HOST ("http://host:11434");
    ``keep_alive`` ("5m", "1h") goes with every request."""

    def __init__(self, model_name: str, api_base: str, embed_model: Optional[str] = None,
                 keep_alive: Optional[str] = None) -> None:
        super().__init__(model_name, embed_model=embed_model)
        self.api_base = api_base.rstrip("/")
        self.keep_alive = keep_alive
        self._engine = None

    def _host(self) -> str:
        return _mapped(self.api_base)

    def _make_engine(self) -> N.Engine:
        co = N.ClientOptions()
        self._host_b = N.enc(self._host())
        co.host = self._host_b
        self._co = co
        return N.Engine(client=co)


class DistributedOllamaClient(_EngineClient):
    """Many nodes behind one client: the library's pool (power of two choices on
    latency, health probes, failover before output, resume after). ``nodes``:
    addresses ("http://10.0.0.5:11434"); without them $OLLAMA_HOSTS, else
    $OLLAMA_HOST. ``health_check_interval`` seconds between probes;
    ``enable_intelligent_routing`` False routes round robin. Other keyword
    arguments of the original's pool are accepted and ignored. The final piece
    of a stream says which node answered (``metadata["node_url"]``)."""

    def __init__(self, model_name: str, embed_model: Optional[str] = None, **pool_kwargs: Any) -> None:
        super().__init__(model_name, embed_model=embed_model)
        self.pool_kwargs = pool_kwargs
        self.keep_alive = pool_kwargs.get("keep_alive")
        nodes: Optional[Sequence[str]] = pool_kwargs.get("nodes")
        self.nodes = [_mapped(n) for n in nodes] if nodes else None
        self._engine = None

    def _make_engine(self) -> N.Engine:
        po = N.PoolOptions()
        if self.nodes:
            self._nodes_b = N.enc(",".join(self.nodes))
            po.nodes = self._nodes_b
        if self.pool_kwargs.get("health_check_interval"):
            po.probe_interval = float(self.pool_kwargs["health_check_interval"])
        if self.pool_kwargs.get("enable_intelligent_routing") is False:
            po.policy = 1  # round robin
        if self.pool_kwargs.get("resume"):
            po.resume = 1
        self._po = po
        return N.Engine(pool=po)
