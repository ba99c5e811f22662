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
