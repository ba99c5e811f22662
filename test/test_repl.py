#!/usr/bin/env python3
"""The interactive session (`agents run MODEL`) driven through a pseudo-terminal,
as a person types: a three-turn conversation that keeps its history, /set
parameter, /clear, Ctrl-C in the middle of an answer and then another question,
\"\"\" input, /save, /load, history kept across sessions, /bye and Ctrl-D.

Usage: test_repl.py AGENTS"""
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import ok, start_sim, summary  # noqa: E402

AG = sys.argv[1]


class Term:
    """agents on a pseudo-terminal: what it wrote, and keys to send"""

    def __init__(self, args, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvpe(AG, [AG, *args], env)
        self.out = b""

    def read_until(self, pattern, timeout=10.0, start=0):
        """waits (bounded) until pattern appears in the output after start"""
        end = time.monotonic() + timeout
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        while time.monotonic() < end:
            m = rx.search(self.out, start)
            if m:
                return m
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                self.out += data
        return rx.search(self.out, start)

    def send(self, s):
        os.write(self.fd, s.encode() if isinstance(s, str) else s)

    def mark(self):
        return len(self.out)

    def wait(self, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            self.read_until(r"$^", 0.05)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        return None


def prompt_evals(text):
    return [int(x) for x in re.findall(rb"prompt eval count: +(\d+)", text)]


def ask(t, question, timeout=15.0):
    """types a question, waits for the answer and the next prompt; the output in between"""
    m0 = t.mark()
    t.send(question + "\r")
    m = t.read_until(r">>> ", timeout, m0 + len(question) + 2)
    ok(m is not None, "no prompt after the answer to %r: %r" % (question, t.out[m0:][-300:]))
    return t.out[m0 : m.start() if m else len(t.out)]


sim, host = start_sim(AG, "--tokens", "6", "--itl", "5")
slow, slow_host = start_sim(AG, "--tokens", "400", "--itl", "40")
home = tempfile.mkdtemp()
env = dict(os.environ, HOME=home, TERM="xterm")
env.pop("AGENTS_MODEL", None)
env.pop("OLLAMA_MODEL", None)
try:
    # a three-turn conversation: each turn sends the ones before (the node's
    # prompt count grows), /set parameter applies, /clear starts afresh
    t = Term(["run", "llama3.2", "-H", host], env)
    ok(t.read_until(r">>> ") is not None, "no prompt: %r" % t.out)
    out = ask(t, "/set verbose")
    ok(b"Set 'verbose' mode." in out, "/set verbose: %r" % out)
    turns = [ask(t, q) for q in ("why is the sky blue?", "and at sunset?", "and on Mars?")]
    counts = [prompt_evals(x) for x in turns]
    ok(all(len(c) == 1 for c in counts), "verbose figures missing: %r" % counts)
    if all(len(c) == 1 for c in counts):
        a, b, c = (x[0] for x in counts)
        ok(a < b < c, "the history is not sent: prompt counts %d, %d, %d" % (a, b, c))
    out = ask(t, "/set parameter num_predict 3")
    ok(b"Set parameter 'num_predict' to '3'" in out, "/set parameter: %r" % out)
    out = ask(t, "one more")
    ok(re.search(rb"eval count: +3 token", out) is not None, "num_predict 3 not applied: %r" % out)
    out = ask(t, "/show parameters")
    ok(b'"num_predict":3' in out, "/show parameters: %r" % out)
    save = os.path.join(home, "conv.json")
    out = ask(t, "/save " + save)
    ok(os.path.exists(save), "/save wrote nothing: %r" % out)
    if os.path.exists(save):
        conv = json.load(open(save))
        roles = [m["role"] for m in conv["messages"]]
        ok(roles == ["user", "assistant"] * 4, "saved roles: %r" % roles)
        ok(conv["messages"][0]["content"] == "why is the sky blue?", "saved question: %r" % conv["messages"][0])
        ok(conv["model"] == "llama3.2" and conv["options"] == {"num_predict": 3}, "saved model/options: %r" % conv)
    out = ask(t, "/clear")
    ok(b"Cleared session context" in out, "/clear: %r" % out)
    out = ask(t, "why is the sky blue?")
    after = prompt_evals(out)
    ok(after and counts[0] and after[0] == counts[0][0], "after /clear the history is still sent: %r vs %r" % (after, counts[0]))
    # """ text of several lines is one message
    m0 = t.mark()
    t.send('"""first line\r')
    ok(t.read_until(r"\.\.\. ", 5, m0) is not None, "no continuation prompt after \"\"\"")
    t.send('second line"""\r')
    ok(t.read_until(r">>> ", 15, m0 + 10) is not None, "no answer to the text of several lines")
    out = ask(t, "/save " + save)
    conv = json.load(open(save))
    ok(conv["messages"][-2] == {"role": "user", "content": "first line\nsecond line"},
       "\"\"\" text: %r" % conv["messages"][-2:])
    # /load of a saved conversation, an unknown command, /?
    out = ask(t, "/load " + save)
    ok(b"4 messages" in out, "/load of a saved conversation: %r" % out)
    out = ask(t, "/frobnicate")
    ok(b"Unknown command '/frobnicate'" in out, "unknown command: %r" % out)
    out = ask(t, "/?")
    ok(b"/bye" in out and b"/set" in out, "/?: %r" % out)
    # line editing: typed, moved over, deleted, and the line as edited is sent
    m0 = t.mark()
    t.send("/shwo\x02\x7f\x05w parameters\r")  # "/shwo", left, backspace (the w), end, "w": "/show"
    ok(t.read_until(r"User defined parameters", 5, m0) is not None, "line editing: %r" % t.out[m0:])
    t.read_until(r">>> ", 5, m0 + 5)
    # Ctrl-C on an empty line says how to leave; /bye leaves with 0
    m0 = t.mark()
    t.send("\x03")
    ok(t.read_until(r"Use Ctrl \+ d or /bye to exit", 5, m0) is not None, "Ctrl-C on an empty line")
    t.send("/bye\r")
    ok(t.wait() == 0, "/bye: not exit 0")
    hist = os.path.join(home, ".agents", "history")
    ok(os.path.exists(hist) and "and on Mars?" in open(hist).read(), "history not kept in ~/.agents/history")

    # Ctrl-C cancels the answer being written, not the session; the next question is answered
    t = Term(["run", "llama3.2", "-H", slow_host], env)
    ok(t.read_until(r">>> ") is not None, "no prompt (slow node)")
    m0 = t.mark()
    t.send("tell me a long story\r")
    ok(t.read_until(r"\w+ \w+ \w+ \w+", 10, m0 + 25) is not None, "the slow answer did not start")
    t0 = time.monotonic()
    t.send("\x03")
    m = t.read_until(r">>> ", 5, m0 + 25)
    ok(m is not None and time.monotonic() - t0 < 4, "Ctrl-C did not end the answer")
    ask(t, "/set parameter num_predict 4")
    out = ask(t, "a short one now")
    ok(len(re.findall(rb"\S+", out)) >= 4, "no answer after Ctrl-C: %r" % out)
    out = ask(t, "/save " + save)
    conv = json.load(open(save))
    ok([m["content"] for m in conv["messages"] if m["role"] == "user"] == ["a short one now"],
       "the cancelled question stayed in the conversation: %r" % conv["messages"])
    # the history of the first session is there: Up brings back the last line
    m0 = t.mark()
    t.send("\x1b[A")
    ok(t.read_until(r"/save", 5, m0) is not None, "Up did not bring back the last line")
    t.send("\x15")  # Ctrl-U: the line goes
    t.send("\x04")  # Ctrl-D on an empty line leaves
    ok(t.wait() == 0, "Ctrl-D: not exit 0")

    # chat -m MODEL on a terminal with no prompt opens the same session
    t = Term(["chat", "-m", "llama3.2", "-H", host], env)
    ok(t.read_until(r">>> ") is not None, "chat on a terminal: no session")
    out = ask(t, "hello there")
    ok(len(out.strip()) > 12, "chat session: no answer: %r" % out)
    t.send("/bye\r")
    ok(t.wait() == 0, "chat session /bye")

    # against a pool of two nodes: the conversation stays on one (its session key)
    pool, pool_host = start_sim(AG, "--nodes", "2", "--tokens", "5")
    second = pool.stdout.readline()
    m = re.search(r"listening on (\S+)", second)
    ok(m is not None, "the second pool node did not start")
    t = Term(["run", "llama3.2", "-N", pool_host + "," + (m.group(1) if m else pool_host)], env)
    ok(t.read_until(r">>> ") is not None, "pool session: no prompt")
    ask(t, "/set verbose")
    turns = [ask(t, q) for q in ("first question", "second question", "third question")]
    nodes = [re.findall(rb"node: +(\S+)", x) for x in turns]
    ok(all(len(n) == 1 for n in nodes) and len({n[0] for n in nodes}) == 1, "pool session moved between nodes: %r" % nodes)
    t.send("/bye\r")
    ok(t.wait() == 0, "pool session /bye")
    pool.kill()
    pool.wait()

    # a model the node lacks: the error, and the session goes on
    t = Term(["run", "nosuchmodel", "-H", host], env)
    t.read_until(r">>> ")
    out = ask(t, "hi")
    ok(b"ENOTFOUND" in out or b"not found" in out, "a missing model: %r" % out)
    t.send("/bye\r")
    ok(t.wait() == 0, "after an error, /bye")
finally:
    sim.kill()
    slow.kill()
    sim.wait()
    slow.wait()

summary()
