"""Runs the original package's example programs (../shared/seed-examples,
unchanged) on this package: each copied with its import changed
("from agents import" -> "from cagents import") and nothing else, against
simulated nodes serving the models they name. The fixed addresses they use
(localhost:11434, and the distributed example's 192.168.1.100/101) are
rewritten to the simulated nodes' loopback ports through AGENTS_HOST_MAP, so
nothing leaves 127.0.0.1.

    run_seed_examples.py AGENTS_BINARY SEED_DIR

Prints one line per example and "N passed, N failed"; exit 1 on a failure.
"""

import os
import re
import subprocess
import sys
import tempfile
import time

MODELS = "llama3:latest,codellama:latest,nomic-embed-text,mxbai-embed-large"

# the simulated node's text, computed from its definition (simtext.py); a
# system prompt asking for fenced code gets a fixed code answer
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simtext import VOCAB as _VOCAB, sim_answer  # noqa: E402


def answers_in(src, out):
    """How many answers the node gave to prompts written in the example's
    source (its string literals, as the last user message) appear in its
    output: the first 8 tokens of each, for every model the node serves."""
    lits = set(re.findall(r'"((?:[^"\\\n]|\\.){3,})"', src)) | set(re.findall(r"'((?:[^'\\\n]|\\.){3,})'", src))
    found = 0
    for lit in lits:
        try:
            text = bytes(lit, "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")
        except (UnicodeDecodeError, UnicodeEncodeError):
            text = lit
        for model in MODELS.split(","):
            a = sim_answer(model, text, 8)
            if len(a) > 12 and a in out:
                found += 1
    return found


VOCAB_RUN = re.compile("(?:" + "|".join(re.escape(w) for w in sorted(_VOCAB, key=len, reverse=True)) + "){10,}")

# examples whose output must hold at least one of the node's answers to a
# prompt written in their source (computed above, not taken from the
# library); those that build their prompts at run time, ten or more of the
# node's tokens in a row; one asking for code, the node's code answer
ANSWERS = {"basic_chat.py", "distributed_client.py", "example_app.py"}
VOCAB = {"custom_agent.py", "multi_agent_workflow.py", "test_framework.py"}  # (test_as_library prints no answer)
CODE = {"coding_agent.py"}

# what each example must print (besides exiting 0 without a traceback)
EXPECT = {
    "basic_chat.py": ["=== Basic Chat Example ===", "Full response:"],
    "coding_agent.py": [],
    "custom_agent.py": ["Example 1: SQL Agent"],
    "distributed_client.py": ["Request 3:", "[Routed to: 127.0.0.1:"],
    "embeddings.py": ["=== Embeddings Example ===", "Dimension: 768"],
    "example_app.py": ["Demo 1: Single Query Processing", "Streaming Demo", "Cleanup complete"],
    "multi_agent_workflow.py": ["Stage 3: Summary"],
    "test_as_library.py": ["Results: 4/4 tests passed"],
    "test_framework.py": ["Test Summary: 5/5 tests passed"],
}


def start_sims(agents, n):
    p = subprocess.Popen([agents, "sim", "--port", "0", "--nodes", str(n), "--models", MODELS, "--tokens", "24",
                          "--itl", "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ports = []
    deadline = time.time() + 10
    while len(ports) < n and time.time() < deadline:
        line = p.stdout.readline()
        m = re.search(r"127\.0\.0\.1:(\d+)", line or "")
        if m:
            ports.append(int(m.group(1)))
    if len(ports) < n:
        p.kill()
        sys.exit("the simulated nodes did not start")
    return p, ports


def main():
    agents, seed = sys.argv[1], sys.argv[2]
    here = os.path.dirname(os.path.abspath(__file__))
    pkg = os.path.normpath(os.path.join(here, ".."))
    sims, ports = start_sims(agents, 3)
    env = dict(os.environ)
    env["PYTHONPATH"] = pkg + os.pathsep + env.get("PYTHONPATH", "")
    env["AGENTS_HOST_MAP"] = (f"localhost:11434=127.0.0.1:{ports[0]},"
                              f"192.168.1.100:11434=127.0.0.1:{ports[1]},"
                              f"192.168.1.101:11434=127.0.0.1:{ports[2]}")
    env["PYTHONIOENCODING"] = "utf-8"
    passed = failed = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in sorted(EXPECT):
                src = open(os.path.join(seed, name), encoding="utf-8").read()
                changed = src.replace("from agents import", "from cagents import")
                # only import lines differ
                diff = [(a, b) for a, b in zip(src.splitlines(), changed.splitlines()) if a != b]
                assert all("import" in a for a, _ in diff), name
                path = os.path.join(tmp, name)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(changed)
                try:
                    r = subprocess.run([sys.executable, path], cwd=tmp, env=env, capture_output=True, text=True,
                                       timeout=120)
                    out, code = r.stdout + r.stderr, r.returncode
                except subprocess.TimeoutExpired:
                    out, code = "(timed out after 120 s)", -1
                missing = [m for m in EXPECT[name] if m not in out]
                if name in ANSWERS and not answers_in(src, out):
                    missing.append("(an answer of the node to one of the example's prompts)")
                if name in VOCAB and not VOCAB_RUN.search(out):
                    missing.append("(ten of the node's tokens in a row)")
                if name in CODE and "print(42)" not in out:
                    missing.append("(the node's code answer)")
                bad = code != 0 or "Traceback" in out or "✗" in out or missing
                if bad:
                    failed += 1
                    print(f"FAIL {name}: exit {code}, missing {missing}\n{out[-3000:]}")
                else:
                    passed += 1
                    print(f"ok   {name} ({len(diff)} import line{'s' if len(diff) != 1 else ''} changed)")
    finally:
        sims.terminate()
        sims.wait()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
