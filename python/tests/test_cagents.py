"""cagents against simulated nodes and a capturing server on loopback.

Environment: CAGENTS_LIB (libagents.so), CAGENTS_AGENTS (the agents program,
for `agents sim`), CAGENTS_ABI_LAYOUT (test/abi_layout, for the struct check).
Every wait is bounded.
"""

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import cagents  # noqa: E402
from cagents import _native as N  # noqa: E402
from simtext import sim_answer  # noqa: E402

AGENTS = os.environ.get("CAGENTS_AGENTS", "agents")


def sim(*args, nodes=1):
    p = subprocess.Popen([AGENTS, "sim", "--port", "0", "--nodes", str(nodes), *args], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    ports = []
    end = time.time() + 10
    while len(ports) < nodes and time.time() < end:
        m = re.search(r"127\.0\.0\.1:(\d+)", p.stdout.readline() or "")
        if m:
            ports.append(int(m.group(1)))
    if len(ports) < nodes:
        p.kill()
        raise RuntimeError("agents sim did not start")
    return p, ports


class Capture:
    """A tiny HTTP server: records each request's JSON body and answers with
    NDJSON lines, `delay` seconds apart; notes when a client went away."""

    def __init__(self, lines, delay=0.0):
        self.lines, self.delay = lines, delay
        self.bodies, self.paths, self.disconnects = [], [], 0

    async def start(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def handle(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            first = head.split(b"\r\n", 1)[0].decode()
            self.paths.append(first.split()[1])
            m = re.search(rb"content-length:\s*(\d+)", head, re.I)
            body = await reader.readexactly(int(m.group(1))) if m else b""
            self.bodies.append(json.loads(body) if body else None)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                         b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            for line in self.lines:
                data = (json.dumps(line) + "\n").encode()
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                await writer.drain()
                if self.delay:
                    await asyncio.sleep(self.delay)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.disconnects += 1
        finally:
            writer.close()

    async def close(self):
        self.server.close()
        await self.server.wait_closed()


def tokens(n, model="llama3:latest"):
    out = [{"model": model, "created_at": "2026-01-01T00:00:00Z", "message": {"role": "assistant",
            "content": f"t{i} "}, "done": False} for i in range(n)]
    out.append({"model": model, "created_at": "2026-01-01T00:00:00Z", "message": {"role": "assistant", "content": ""},
                "done": True, "done_reason": "stop", "eval_count": n, "eval_duration": 1000, "total_duration": 2000,
                "load_duration": 3})
    return out


class Layout(unittest.TestCase):
    def test_structs_match_the_c_headers(self):
        prog = os.environ.get("CAGENTS_ABI_LAYOUT")
        if not prog:
            self.skipTest("CAGENTS_ABI_LAYOUT not set")
        layout = json.loads(subprocess.check_output([prog], text=True))
        for name, cls in N.STRUCTS.items():
            with self.subTest(struct=name):
                self.assertEqual(ctypes_size(cls), layout[name]["size"])
                for field, _ in cls._fields_:
                    self.assertEqual(getattr(cls, field).offset, layout[name][field], field)


def ctypes_size(cls):
    import ctypes

    return ctypes.sizeof(cls)


class RequestBodies(unittest.IsolatedAsyncioTestCase):
    """What goes on the wire, compared with what the original package sends."""

    async def test_chat_body_like_the_original(self):
        cap = await Capture(tokens(3)).start()
        c = cagents.LocalOllamaClient("llama3:latest", f"http://127.0.0.1:{cap.port}", keep_alive="10m")
        agent = cagents.CodingAgent(c)
        out = [r async for r in agent.run([cagents.ChatMessage("user", "hi")], temperature=0.2, max_tokens=5,
                                          top_p=0.9, num_ctx=4096)]
        await c.close()
        await cap.close()
        self.assertEqual("".join(r.content for r in out), "t0 t1 t2 ")
        self.assertTrue(out[-1].done)
        self.assertEqual(out[-1].metadata["eval_count"], 3)
        body = cap.bodies[0]
        self.assertEqual(cap.paths[0], "/api/chat")
        # the original's payload: model, messages (system prompt first), stream, options, keep_alive
        self.assertEqual(body["model"], "llama3:latest")
        self.assertEqual(body["messages"], [{"role": "system", "content": cagents.CodingAgent.system_prompt},
                                            {"role": "user", "content": "hi"}])
        self.assertEqual(body.get("stream", True), True)
        self.assertEqual(body["options"], {"temperature": 0.2, "top_p": 0.9, "num_predict": 5, "num_ctx": 4096})
        self.assertEqual(body["keep_alive"], "10m")

    async def test_no_stream_and_embedding_bodies(self):
        cap = await Capture(tokens(2)).start()
        c = cagents.LocalOllamaClient("llama3:latest", f"http://127.0.0.1:{cap.port}")
        out = [r async for r in c.chat([{"role": "user", "content": "x"}], stream=False)]
        self.assertEqual(len(out), 1)
        self.assertTrue(out[0].done)
        self.assertEqual(out[0].content, "t0 t1 ")
        self.assertIs(cap.bodies[0]["stream"], False)
        self.assertEqual(cap.bodies[0].get("options", {}), {})
        # a blank text: no request at all, as the original
        self.assertEqual(await c.generate_embedding("   "), [])
        self.assertEqual(len(cap.bodies), 1)
        await c.close()
        await cap.close()


class Streams(unittest.IsolatedAsyncioTestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim, ports = sim("--tokens", "16", "--itl", "2", "--models", "llama3:latest,nomic-embed-text")
        cls.url = f"http://127.0.0.1:{ports[0]}"

    @classmethod
    def tearDownClass(cls):
        cls.sim.terminate()
        cls.sim.wait()
        cls.sim.stdout.close()

    async def test_many_at_once_and_the_loop_stays_free(self):
        c = cagents.LocalOllamaClient("llama3:latest", self.url)
        agent = cagents.ChatAgent(c)
        ticks = 0
        stop = False

        async def ticker():
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.001)

        async def one(i):
            return "".join([r.content async for r in agent.run([{"role": "user", "content": f"q{i}"}])])

        answers = await asyncio.wait_for(asyncio.gather(*[one(i) for i in range(100)]), 30)
        await c.close()
        self.assertEqual(len(answers), 100)
        self.assertTrue(all(a for a in answers))
        # a stream of half a second: the loop keeps running other work meanwhile
        # (a client that blocked it would let the ticker run about once)
        cap = await Capture(tokens(50), delay=0.01).start()
        slow = cagents.LocalOllamaClient("llama3:latest", f"http://127.0.0.1:{cap.port}")
        t = asyncio.create_task(ticker())
        got = [r async for r in slow.chat([{"role": "user", "content": "slow"}])]
        stop = True
        await t
        await slow.close()
        await cap.close()
        # the whole answer, in order, then done (pieces that queued up while
        # the loop was busy arrive merged: the count is at most one a line)
        self.assertEqual("".join(r.content for r in got), "".join(f"t{i} " for i in range(50)))
        self.assertTrue(got[-1].done)
        self.assertTrue(2 <= len(got) <= 51)
        self.assertGreater(ticks, 10)

    async def test_cancelling_a_task_cancels_the_request(self):
        cap = await Capture(tokens(200), delay=0.01).start()
        c = cagents.LocalOllamaClient("llama3:latest", f"http://127.0.0.1:{cap.port}")
        got = []

        async def reader():
            async for r in c.chat([{"role": "user", "content": "long"}]):
                got.append(r)

        task = asyncio.create_task(reader())
        for _ in range(200):
            if len(got) >= 3:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task
        # the server sees the client go away long before its 200 lines (2 s)
        for _ in range(100):
            if cap.disconnects:
                break
            await asyncio.sleep(0.01)
        self.assertEqual(cap.disconnects, 1)
        self.assertLess(len(got), 50)
        # leaving a stream early (break) cancels too
        cap2 = await Capture(tokens(200), delay=0.01).start()
        c2 = cagents.LocalOllamaClient("llama3:latest", f"http://127.0.0.1:{cap2.port}")
        async for r in c2.chat([{"role": "user", "content": "long"}]):
            break
        for _ in range(100):
            if cap2.disconnects:
                break
            await asyncio.sleep(0.01)
        self.assertEqual(cap2.disconnects, 1)
        await c.close()
        await c2.close()
        await cap.close()
        await cap2.close()

    async def test_blocking_calls_inside_a_running_loop(self):
        c = cagents.LocalOllamaClient("llama3:latest", self.url, embed_model="nomic-embed-text")
        text = cagents.ChatAgent(c).get_full_response([{"role": "user", "content": "x"}])
        self.assertTrue(text)
        vec = cagents.EmbeddingAgent(c).run_sync([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
        self.assertEqual(len(vec), 1)
        self.assertEqual(len(vec[0].metadata["embedding"]), 768)
        self.assertEqual(vec[0].role, "embedding")
        self.assertEqual(len(c.generate_embedding_sync("hello")), 768)
        self.assertTrue(c.chat_sync([{"role": "user", "content": "x"}])[-1].done)
        await c.close()

    async def test_errors(self):
        c = cagents.LocalOllamaClient("no-such-model", self.url)
        with self.assertRaises(cagents.AgentsError) as e:
            [r async for r in c.chat([{"role": "user", "content": "x"}])]
        self.assertIsInstance(e.exception, RuntimeError)  # what the original raised
        self.assertEqual(e.exception.name, "ENOTFOUND")
        self.assertIn("not found", str(e.exception))
        await c.close()
        dead = cagents.LocalOllamaClient("llama3:latest", "http://127.0.0.1:1")
        with self.assertRaises(RuntimeError) as e:
            await dead.generate_embedding("x")
        self.assertEqual(e.exception.name, "ECONNREFUSED")
        await dead.close()


class Blocking(unittest.TestCase):
    def test_scripts_without_a_loop(self):
        p, ports = sim("--tokens", "8", "--models", "llama3:latest")
        try:
            c = cagents.LocalOllamaClient("llama3:latest", f"http://127.0.0.1:{ports[0]}")
            for agent in (cagents.ChatAgent(c), cagents.ReasoningAgent(c), cagents.ResearchAgent(c),
                          cagents.SummarizationAgent(c)):
                self.assertTrue(agent.get_full_response([{"role": "user", "content": "x"}]))
            self.assertTrue(cagents.check_node_health(f"http://127.0.0.1:{ports[0]}"))
            h = cagents.node_health(f"http://127.0.0.1:{ports[0]}")
            self.assertTrue(h["up"] and h["version"] and h["rtt_ms"] > 0)
        finally:
            p.terminate()
            p.wait()
            p.stdout.close()
        self.assertFalse(cagents.check_node_health("http://127.0.0.1:1", timeout=1))

    def test_distributed_fails_over(self):
        p, ports = sim("--tokens", "6", "--models", "llama3:latest", nodes=2)
        try:
            nodes = [f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}", "http://127.0.0.1:1"]
            c = cagents.DistributedOllamaClient("llama3:latest", nodes=nodes, health_check_interval=60)
            agent = cagents.ChatAgent(c)

            async def many():
                async def one(i):
                    last = None
                    async for r in agent.run([{"role": "user", "content": f"q{i}"}]):
                        last = r
                    return last.metadata["node_url"]

                return await asyncio.gather(*[one(i) for i in range(30)])

            used = asyncio.run(many())
            self.assertEqual(len(used), 30)
            self.assertEqual(set(used), {f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}"})
        finally:
            p.terminate()
            p.wait()
            p.stdout.close()

    def test_openai_providers(self):
        p, ports = sim("--api", "openai", "--tokens", "5", "--models", "qwen")
        try:
            c = cagents.LlamaCppClient("qwen", f"http://127.0.0.1:{ports[0]}")
            text = cagents.ChatAgent(c).get_full_response([{"role": "user", "content": "x"}])
            self.assertTrue(text)
        finally:
            p.terminate()
            p.wait()
            p.stdout.close()


class Threads(unittest.TestCase):
    """One client shared by many threads of blocking calls and asyncio streams
    at once; closing under a running stream; a client used after fork()."""

    @classmethod
    def setUpClass(cls):
        cls.proc, ports = sim("--tokens", "8", "--models", "llama3:latest")
        cls.url = f"http://127.0.0.1:{ports[0]}"

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait()
        cls.proc.stdout.close()

    def test_blocking_calls_from_16_threads_and_streams(self):
        import threading

        c = cagents.LocalOllamaClient("llama3:latest", self.url)
        calls = int(os.environ.get("CAGENTS_THREAD_CALLS", "50"))
        wrong, errors = [], []

        def work(t):
            try:
                for k in range(calls):
                    prompt = f"thread {t} call {k}"
                    got = c.chat_sync([{"role": "user", "content": prompt}])[-1].content
                    if got != sim_answer("llama3:latest", prompt, 8):
                        wrong.append((t, k, got))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        async def streams():
            async def one(i):
                prompt = f"stream {i}"
                parts = [r.content async for r in c.chat([{"role": "user", "content": prompt}])]
                return "".join(parts) == sim_answer("llama3:latest", prompt, 8)

            oks = []
            for _ in range(5):
                oks += await asyncio.gather(*[one(i) for i in range(20)])
            return oks

        threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
        for t in threads:
            t.start()
        oks = asyncio.run(streams())
        for t in threads:
            t.join(120)
        self.assertFalse(any(t.is_alive() for t in threads), "a blocking call hung")
        self.assertEqual(errors, [])
        self.assertEqual(wrong, [])
        self.assertEqual(oks, [True] * 100)
        asyncio.run(c.close())

    def test_close_ends_a_running_stream(self):
        p, ports = sim("--tokens", "400", "--itl", "20", "--models", "llama3:latest")
        try:
            async def main():
                c = cagents.LocalOllamaClient("llama3:latest", f"http://127.0.0.1:{ports[0]}")
                got = []

                async def reader():
                    async for r in c.chat([{"role": "user", "content": "x"}]):
                        got.append(r.content)

                task = asyncio.create_task(reader())
                for _ in range(200):  # until it streams
                    if got:
                        break
                    await asyncio.sleep(0.01)
                self.assertTrue(got)
                t0 = time.monotonic()
                await c.close()
                with self.assertRaises(cagents.AgentsError) as e:
                    await asyncio.wait_for(task, 2)
                self.assertEqual(e.exception.name, "ESHUTDOWN")
                self.assertIn("closed", str(e.exception))
                self.assertLess(time.monotonic() - t0, 2)
                # the client works again after close (a new engine)
                parts = [r.content async for r in c.chat([{"role": "user", "content": "y"}], max_tokens=3)]
                self.assertEqual("".join(parts), sim_answer("llama3:latest", "y", 3))
                await c.close()

            asyncio.run(main())
        finally:
            p.terminate()
            p.wait()
            p.stdout.close()

    @unittest.skipUnless(hasattr(os, "fork"), "no fork()")
    def test_client_used_after_fork(self):
        c = cagents.LocalOllamaClient("llama3:latest", self.url)
        want = sim_answer("llama3:latest", "before", 8)
        self.assertEqual(c.chat_sync([{"role": "user", "content": "before"}])[-1].content, want)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: the same client, its first blocking call
            code = 1
            try:
                os.close(r)
                got = c.chat_sync([{"role": "user", "content": "child"}])[-1].content
                os.write(w, got.encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.02)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            self.fail("the child's blocking call hung")
        with os.fdopen(r, "rb") as f:
            got = f.read().decode()
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertEqual(got, sim_answer("llama3:latest", "child", 8))
        # the parent's client is untouched
        self.assertEqual(c.chat_sync([{"role": "user", "content": "after"}])[-1].content,
                         sim_answer("llama3:latest", "after", 8))
        asyncio.run(c.close())


class Utils(unittest.TestCase):
    """The original's helpers, with the values it returns."""

    def test_values(self):
        self.assertEqual(cagents.estimate_tokens("This is a test sentence."), 6)
        self.assertEqual(cagents.estimate_tokens("é" * 9), 2)  # characters, not bytes
        self.assertEqual(cagents.truncate_to_token_limit("Long text here", token_limit=2), "Long tex...")
        self.assertEqual(cagents.truncate_to_token_limit("short", 10), "short")
        self.assertEqual(cagents.parse_json_response('{"key": "value"}'), {"key": "value"})
        self.assertEqual(cagents.parse_json_response('```json\n{"key": "value"}\n```'), {"key": "value"})
        self.assertEqual(cagents.parse_json_response('Some text {"key": "value"} more'), {"key": "value"})
        self.assertEqual(cagents.parse_json_response('See [1] and [2]. ```json {"a":1}```'), {"a": 1})
        self.assertIsNone(cagents.parse_json_response("Not JSON at all"))
        self.assertIsNone(cagents.parse_json_response(""))
        with self.assertRaises(ValueError):
            cagents.parse_json_response("Not JSON", strict=True)
        with self.assertRaises(ValueError):
            cagents.parse_json_response("", strict=True)
        self.assertEqual(cagents.format_chat_history([cagents.ChatMessage("user", "hello there"),
                                                      {"role": "assistant", "content": "hi"}, 42], max_length=5),
                         "USER: hello...\nASSISTANT: hi")
        self.assertEqual(cagents.merge_response_chunks([cagents.ChatResponse("a"), {"content": "b"}, "c", 1]), "abc")

    def test_retry_with_backoff(self):
        import cagents.utils as U

        sleeps, calls = [], []
        real = U.time.sleep
        U.time.sleep = sleeps.append
        try:
            def flaky():
                calls.append(1)
                if len(calls) < 3:
                    raise OSError("not yet")
                return "ok"

            self.assertEqual(cagents.retry_with_backoff(flaky, max_retries=3, initial_delay=0.5, backoff_factor=3),
                             "ok")
            self.assertEqual(sleeps, [0.5, 1.5])
            calls.clear()
            sleeps.clear()
            with self.assertRaises(KeyError):
                cagents.retry_with_backoff(lambda: {}["x"], max_retries=2, initial_delay=1)
            self.assertEqual(sleeps, [1, 2])
            with self.assertRaises(KeyError):  # not in exceptions: at once
                cagents.retry_with_backoff(lambda: {}["x"], exceptions=(OSError,))
        finally:
            U.time.sleep = real


if __name__ == "__main__":
    unittest.main()
