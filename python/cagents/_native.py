"""The C library through ctypes, and the bridge from its engine to asyncio.

One ``Engine`` per client: a libagents engine (a client on a thread of its
own, agents/engine.h) whose notification descriptor is watched by every
asyncio loop that has a request in flight on it. Events are taken with
``ag_engine_next`` and handed to the request they belong to; a request
started from one loop and read on another (a blocking call made inside a
running loop runs on a helper thread) is handed over thread-safely.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import struct
import ctypes.util
import os
import threading
import weakref
from ctypes import (POINTER, Structure, byref, c_char, c_char_p, c_double, c_float, c_int, c_int64,
                    c_size_t, c_uint, c_uint64, c_void_p)
from typing import Any, Dict, List, Optional

# ---- finding the library ----------------------------------------------------


def _candidates() -> List[str]:
    out = []
    env = os.environ.get("CAGENTS_LIB")
    if env:
        out.append(env)
    try:  # written at install time: the library installed beside this package
        from ._libpath import LIBPATH  # type: ignore

        out.append(LIBPATH)
    except ImportError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    for build in ("build/release", "build"):  # a source tree: python/cagents -> build
        out.append(os.path.join(here, "..", "..", build, "libagents.so"))
    found = ctypes.util.find_library("agents")
    if found:
        out.append(found)
    out.append("libagents.so.0")
    return out


def _load() -> ctypes.CDLL:
    errors = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            errors.append(f"{path}: {e}")
    raise ImportError("cagents: libagents.so not found (set CAGENTS_LIB, or install the library): "
                      + "; ".join(errors))


lib = _load()

# ---- the public structs (checked against C by python/tests) ------------------


class Message(Structure):
    _fields_ = [("role", c_char_p), ("content", c_char_p), ("thinking", c_char_p),
                ("images", POINTER(c_char_p)), ("n_images", c_size_t), ("tool_calls_json", c_char_p),
                ("tool_name", c_char_p)]


class RequestOptions(Structure):
    _fields_ = [("deadline", c_double), ("first_token_deadline", c_double), ("first_byte_timeout", c_double),
                ("idle_timeout", c_double), ("headers", c_char_p), ("retry_budget", c_int), ("node", c_char_p),
                ("read_end", c_int), ("retries", c_int), ("retry_delay", c_double), ("retry_factor", c_double),
                ("session", c_char_p), ("priority", c_int), ("tenant", c_char_p)]


class GenOptions(Structure):
    _fields_ = [("format", c_char_p), ("options_json", c_char_p), ("keep_alive", c_char_p), ("think", c_char_p),
                ("no_stream", c_int)]


class ChatParams(Structure):
    _fields_ = [("model", c_char_p), ("messages", POINTER(Message)), ("n_messages", c_size_t),
                ("tools_json", c_char_p), ("gen", GenOptions), ("request", POINTER(RequestOptions))]


class EmbedParams(Structure):
    _fields_ = [("model", c_char_p), ("inputs", POINTER(c_char_p)), ("n_inputs", c_size_t), ("truncate", c_int),
                ("dimensions", c_int), ("options_json", c_char_p), ("keep_alive", c_char_p), ("legacy", c_int),
                ("request", POINTER(RequestOptions))]


class ClientOptions(Structure):
    _fields_ = [("host", c_char_p), ("connect_timeout", c_double), ("idle_timeout", c_double),
                ("max_connections", c_uint), ("max_idle", c_uint), ("max_queue", c_uint), ("max_body", c_size_t),
                ("max_token", c_size_t), ("alloc", c_void_p), ("dns", c_void_p), ("user_agent", c_char_p),
                ("tls_ca_file", c_char_p), ("tls_insecure", c_int), ("bearer_token", c_char_p),
                ("basic_user", c_char_p), ("basic_password", c_char_p), ("api", c_int),
                ("first_byte_timeout", c_double)]


class PoolOptions(Structure):
    _fields_ = [("client", ClientOptions), ("nodes", c_char_p), ("nodes_file", c_char_p), ("policy", c_int),
                ("node_max_in_flight", c_uint), ("max_queue", c_uint), ("probe_interval", c_double),
                ("probe_timeout", c_double), ("eject_after", c_uint), ("readmit_min", c_double),
                ("readmit_max", c_double), ("retry_budget", c_uint), ("resume", c_int), ("seed", c_uint64),
                ("affinity_slack", c_double), ("prefix_entries", c_int), ("affinity_ramp", c_double),
                ("resolve_interval", c_double), ("priority_reserve", c_uint)]


class EngineOptions(Structure):
    _fields_ = [("client", POINTER(ClientOptions)), ("pool", POINTER(PoolOptions)), ("max_pending", c_size_t),
                ("no_coalesce", c_int), ("notify_delay", c_double)]


class Chunk(Structure):
    _fields_ = [("kind", c_int), ("text", c_void_p), ("len", c_size_t), ("name", c_void_p), ("name_len", c_size_t),
                ("arguments_json", c_void_p), ("arguments_len", c_size_t), ("index", c_int), ("digest", c_void_p),
                ("total", c_int64), ("completed", c_int64)]


class ServerStats(Structure):
    _fields_ = [(n, c_int64) for n in ("total_duration", "load_duration", "prompt_eval_count",
                                       "prompt_eval_duration", "eval_count", "eval_duration")]


class Timing(Structure):
    _fields_ = [(n, c_int64) for n in ("ttft_ns", "e2e_ns", "itl_mean_ns", "itl_max_ns", "chunks", "bytes")]


class Result(Structure):
    _fields_ = [("status", c_int), ("error", c_char_p), ("http_status", c_int), ("model", c_char_p),
                ("created_at", c_char_p), ("done_reason", c_char_p), ("server", ServerStats), ("timing", Timing),
                ("context", c_void_p), ("n_context", c_size_t), ("embeddings", POINTER(c_float)),
                ("n_embeddings", c_size_t), ("dim", c_size_t), ("models", c_void_p), ("n_models", c_size_t),
                ("show", c_void_p), ("version", c_char_p), ("node", c_char_p), ("attempts", c_int),
                ("tries", c_void_p), ("n_tries", c_size_t)]


class Event(Structure):
    _fields_ = [("kind", c_int), ("id", c_uint64), ("ud", c_void_p), ("chunk", Chunk), ("result", POINTER(Result)),
                ("agent_result", c_void_p), ("status", c_int)]


class NodeHealth(Structure):
    _fields_ = [("up", c_int), ("version", c_char * 64), ("rtt_ms", c_double), ("status", c_int),
                ("error", c_char * 256)]


class SyncOut(Structure):
    _fields_ = [("result", POINTER(Result)), ("text", c_void_p), ("text_len", c_size_t), ("thinking", c_void_p),
                ("thinking_len", c_size_t)]


STRUCTS = {"ag_message": Message, "ag_request_options": RequestOptions, "ag_gen_options": GenOptions,
           "ag_chat_params": ChatParams, "ag_embed_params": EmbedParams, "ag_client_options": ClientOptions,
           "ag_pool_options": PoolOptions, "ag_engine_options": EngineOptions, "ag_chunk": Chunk,
           "ag_result": Result, "ag_event": Event, "ag_node_health": NodeHealth, "ag_sync_out": SyncOut}

# ---- the functions ----------------------------------------------------------

_p = c_void_p


def _fn(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


ag_engine_new = _fn("ag_engine_new", _p, POINTER(EngineOptions), POINTER(c_int))
ag_engine_stop = _fn("ag_engine_stop", None, _p)
ag_engine_free = _fn("ag_engine_free", None, _p)
ag_engine_fd = _fn("ag_engine_fd", c_int, _p)
ag_engine_chat = _fn("ag_engine_chat", c_int, _p, POINTER(ChatParams), _p, POINTER(c_uint64))
ag_engine_embed = _fn("ag_engine_embed", c_int, _p, POINTER(EmbedParams), _p, POINTER(c_uint64))
ag_engine_cancel = _fn("ag_engine_cancel", None, _p, c_uint64)
ag_engine_next = _fn("ag_engine_next", c_int, _p, POINTER(POINTER(Event)), c_int)
ag_engine_take_text = _fn("ag_engine_take_text", c_size_t, _p, c_void_p, c_size_t)
ag_event_free = _fn("ag_event_free", None, POINTER(Event))
ag_strerror = _fn("ag_strerror", c_char_p, c_int)
ag_err_name = _fn("ag_err_name", c_char_p, c_int)
ag_agent_prompt = _fn("ag_agent_prompt", c_char_p, c_char_p)
ag_json_extract = _fn("ag_json_extract", c_int, c_char_p, c_size_t, c_int, POINTER(c_void_p))
ag_node_health_check = _fn("ag_node_health_check", c_int, c_char_p, c_double, POINTER(NodeHealth))
ag_estimate_tokens = _fn("ag_estimate_tokens", c_size_t, c_char_p)
ag_truncate_to_tokens = _fn("ag_truncate_to_tokens", c_void_p, c_char_p, c_size_t, c_size_t)
ag_format_chat_history = _fn("ag_format_chat_history", c_void_p, POINTER(Message), c_size_t, c_size_t)
libc_free = ctypes.CDLL(None).free
libc_free.argtypes = [c_void_p]
libc_free.restype = None

AG_EVENT_CHUNK, AG_EVENT_DONE = 1, 2
AG_CHUNK_CONTENT, AG_CHUNK_THINKING, AG_CHUNK_TOOL_CALL = 1, 2, 3
AG_API_OPENAI = 1
AG_ECANCELED, AG_ESHUTDOWN = -3, -4
AG_JSON_LENIENT, AG_JSON_STRICT = 0, 2


def enc(s: Optional[str]) -> Optional[bytes]:
    return None if s is None else s.encode("utf-8", "surrogatepass")


def strerror(code: int) -> str:
    return ag_strerror(code).decode()


def take_string(p: Optional[int]) -> Optional[str]:
    """A malloc'd C string as str, freed."""
    if not p:
        return None
    try:
        return ctypes.string_at(p).decode("utf-8", "replace")
    finally:
        libc_free(p)


class AgentsError(RuntimeError):
    """A request failed: ``status`` is the library's code (``AG_E*``, negative),
    ``name`` its symbol, the message the server's words or the library's."""

    def __init__(self, status: int, message: str, http_status: int = 0):
        super().__init__(message)
        self.status = status
        self.name = ag_err_name(status).decode()
        self.http_status = http_status


# ---- one request as seen from Python -----------------------------------------


class Request:
    """Events of one request, buffered for the coroutine that reads them."""

    __slots__ = ("id", "key", "loop", "buf", "waiter", "done", "engine", "released", "handed")

    def __init__(self, engine: "Engine", loop: Optional[asyncio.AbstractEventLoop]):
        self.id = 0
        self.key = 0
        self.loop = loop
        self.buf: collections.deque = collections.deque()
        self.waiter: Optional[asyncio.Future] = None
        self.done = False
        self.engine = engine
        self.released = False
        # an item was handed to this request's loop from another thread: from
        # then on every item goes through the loop's queue, so that none
        # overtakes one still queued there (an answer's text before its end)
        self.handed = False

    # called on the thread of self.loop
    def _push(self, item) -> None:
        self.buf.append(item)
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def next(self):
        """The next item: ("chunk", kind, text) or ("done", status, info)."""
        while not self.buf:
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.buf.popleft()

    def release(self) -> None:
        """The reader is finished with it: cancel it if it still runs, stop
        watching the engine for it."""
        if self.released:
            return
        self.released = True
        self.engine._release(self)


class Engine:
    """A libagents engine and the asyncio loops that read it.

    Threads: any number of threads may start requests and read them at once
    (each blocking call runs a loop of its own on its thread). Every loop
    with a request in flight watches the engine's descriptor; whichever wakes
    first takes the events (one drainer at a time, under ``_drain_lock``)
    and hands each to the loop of the request it belongs to.

    Lifetime: ``close()`` ends every request still running with
    AG_ESHUTDOWN. After ``fork()`` the child's copy is dead (its thread did
    not follow): its calls raise AG_ESHUTDOWN and ``dead`` is true, so a
    client makes itself a new engine there."""

    # the engine signals the loop at most this long after an event is queued:
    # one wake-up for the tokens of many streams (real models emit one every
    # 10-50 ms per stream); CAGENTS_NOTIFY_DELAY (seconds) changes it
    NOTIFY_DELAY = float(os.environ.get("CAGENTS_NOTIFY_DELAY", "0.0005"))

    def __init__(self, client: Optional[ClientOptions] = None, pool: Optional[PoolOptions] = None):
        opts = EngineOptions()
        opts.notify_delay = self.NOTIFY_DELAY
        if pool is not None:
            opts.pool = ctypes.pointer(pool)
        elif client is not None:
            opts.client = ctypes.pointer(client)
        err = c_int(0)
        self._keep = (client, pool)
        self._fd = -1
        self.dead = False
        self._e = ag_engine_new(byref(opts), byref(err))
        if not self._e:
            raise AgentsError(err.value, strerror(err.value))
        # the loops watch a descriptor of our own: it stays open (and its
        # number unused by anything else) until the last loop stopped
        # watching, even after the engine is freed
        self._fd = os.dup(ag_engine_fd(self._e))
        self._reqs: Dict[int, Request] = {}  # by key: the ud the engine hands back
        self._loops: Dict[asyncio.AbstractEventLoop, int] = {}
        self._lock = threading.Lock()  # _reqs, _loops, _e against close
        self._drain_lock = threading.Lock()  # one drainer: the buffers below, the engine against free
        self._next_key = 0
        self._evp = POINTER(Event)()
        self._tbuf = ctypes.create_string_buffer(1 << 16)  # ag_engine_take_text's records
        _engines.add(self)

    # -- starting --
    def start_chat(self, params: ChatParams) -> Request:
        return self._start(lambda e, key, rid: ag_engine_chat(e, byref(params), key, byref(rid)))

    def start_embed(self, params: EmbedParams) -> Request:
        return self._start(lambda e, key, rid: ag_engine_embed(e, byref(params), key, byref(rid)))

    def _start(self, call) -> Request:
        loop = asyncio.get_running_loop()
        req = Request(self, loop)
        rid = c_uint64(0)
        with self._lock:
            if not self._e:
                raise AgentsError(AG_ESHUTDOWN, "the client is closed" if not self.dead else
                                  "this engine belongs to the process that forked: make a new client")
            self._next_key += 1
            key = req.key = self._next_key
            self._reqs[key] = req  # before the call: its first event may come at once
            rc = call(self._e, key, rid)
            if rc != 0:
                del self._reqs[key]
                raise AgentsError(rc, strerror(rc))
            req.id = rid.value
            n = self._loops.get(loop, 0)
            self._loops[loop] = n + 1
            if n == 0:  # under the lock: close() sees either no loop or a watching one
                loop.add_reader(self._fd, self._drain, loop)
        return req

    def _release(self, req: Request) -> None:
        with self._lock:
            if not self._e:  # closed: close() ended the request and stopped the loops watching
                return
            if not req.done:
                ag_engine_cancel(self._e, req.id)
            self._reqs.pop(req.key, None)
            n = self._loops.get(req.loop, 0) - 1
            if n <= 0:
                self._loops.pop(req.loop, None)
                if not req.loop.is_closed():
                    req.loop.remove_reader(self._fd)
            else:
                self._loops[req.loop] = n

    # -- the reader: every event the engine has, to its request --
    def _drain(self, here: asyncio.AbstractEventLoop) -> None:
        with self._drain_lock:
            e = self._e
            if e:
                self._drain_locked(e, here)

    def _drain_locked(self, e, here: asyncio.AbstractEventLoop) -> None:
        evp = self._evp
        ref = byref(evp)
        nxt, free, take, reqs = ag_engine_next, ag_event_free, ag_engine_take_text, self._reqs
        tbuf = self._tbuf
        tsize = len(tbuf)
        unpack = struct.Struct("<QIH").unpack_from
        while True:
            # text chunks first, many in one call (what most events are)
            n = take(e, tbuf, tsize)
            if n:
                raw = ctypes.string_at(tbuf, n)
                off = 0
                while off < n:
                    ud, ln, kind = unpack(raw, off)
                    req = reqs.get(ud)
                    if req is not None:
                        item = ("chunk", kind, raw[off + 16:off + 16 + ln].decode("utf-8", "replace"))
                        if req.loop is here and not req.handed:  # (the usual case, inline: a token each)
                            req._push(item)
                        else:
                            self._deliver(req, item, here)
                    off += (16 + ln + 7) & ~7
                continue
            # anything else (a completion, a tool call): one at a time
            if nxt(e, ref, 0) != 1:
                return
            ev = evp.contents
            req = reqs.get(ev.ud)
            if req is None:  # released: its events are dropped
                free(evp)
                continue
            if ev.kind == AG_EVENT_CHUNK:
                ch = ev.chunk
                ln = ch.len
                item = ("chunk", ch.kind, ctypes.string_at(ch.text, ln).decode("utf-8", "replace") if ln else "")
            else:
                req.done = True
                item = ("done", ev.status, _result_info(ev.result.contents) if ev.result else {})
            free(evp)
            self._deliver(req, item, here)

    @staticmethod
    def _deliver(req: "Request", item, here) -> None:
        """The item to its request, in order: at once on the request's own
        loop, unless something is still queued for it there."""
        if req.loop is here and not req.handed:
            req._push(item)
        elif req.loop is here:
            here.call_soon(req._push, item)  # behind what was handed to this loop before
        else:
            Engine._handoff(req, item)

    @staticmethod
    def _handoff(req: "Request", item) -> None:
        req.handed = True
        try:
            req.loop.call_soon_threadsafe(req._push, item)
        except RuntimeError:  # that loop is closed: nobody reads
            pass

    def close(self) -> None:
        """Frees the engine; each request still running ends with
        AG_ESHUTDOWN ("the client was closed") on its own loop. From any
        thread, more than once."""
        with self._lock:
            e, self._e = self._e, None
            if not e:
                return
            loops = list(self._loops)
            self._loops.clear()
            pending = [r for r in self._reqs.values() if not r.done]
            self._reqs.clear()
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for loop in loops:
            if loop.is_closed():
                continue
            if loop is here:
                loop.remove_reader(self._fd)
            else:
                try:
                    loop.call_soon_threadsafe(loop.remove_reader, self._fd)
                except RuntimeError:
                    pass
        with self._drain_lock:  # no thread is inside the engine while it is freed
            ag_engine_free(e)
        item = ("done", AG_ESHUTDOWN, {"error": "the client was closed while the request ran"})
        for req in pending:
            req.done = True
            self._deliver(req, item, here)

    def _after_fork_in_child(self) -> None:
        # the engine's thread did not follow the fork and its mutex may be
        # held forever: never touch it again (its memory is left as it is)
        self._lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self._e = None
        self.dead = True
        self._reqs = {}
        self._loops = {}

    def __del__(self):
        try:
            if not self.dead:
                self.close()
        except Exception:
            pass
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1


_engines: "weakref.WeakSet[Engine]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for eng in list(_engines):
        eng._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _s(p: Optional[bytes]) -> Optional[str]:
    return None if p is None else p.decode("utf-8", "replace")


def _result_info(r: Result) -> Dict[str, Any]:
    info: Dict[str, Any] = {"error": _s(r.error), "http_status": r.http_status, "model": _s(r.model),
                            "done_reason": _s(r.done_reason), "node": _s(r.node), "attempts": r.attempts}
    s = r.server
    for k in ("eval_count", "eval_duration", "total_duration", "load_duration", "prompt_eval_count",
              "prompt_eval_duration"):
        v = getattr(s, k)
        if v >= 0:
            info[k] = v
    if r.n_embeddings and r.dim and r.embeddings:
        n, d = r.n_embeddings, r.dim
        flat = r.embeddings[: n * d]
        info["embeddings"] = [flat[i * d:(i + 1) * d] for i in range(n)]
    elif r.n_embeddings:
        info["embeddings"] = [[] for _ in range(r.n_embeddings)]
    info["ttft_ms"] = r.timing.ttft_ns / 1e6 if r.timing.ttft_ns >= 0 else None
    return info
