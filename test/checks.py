"""What the Python-driven tests share: a count of checks, and `agents sim`
started on an ephemeral loopback port."""
import re
import subprocess
import sys

counts = {"passed": 0, "failed": 0}


def ok(cond, what):
    counts["passed" if cond else "failed"] += 1
    if not cond:
        print("FAIL:", what, file=sys.stderr)


def start_sim(agents, *args):
    """(process, "127.0.0.1:PORT") of its first node; its stdout stays open for more nodes"""
    p = subprocess.Popen([agents, "sim", "--port", "0", *args], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.search(r"listening on (\S+)", line)
    if not m:
        raise SystemExit("the sim did not start: " + line)
    return p, m.group(1)


def summary():
    print("%d passed, %d failed" % (counts["passed"], counts["failed"]))
    sys.exit(1 if counts["failed"] else 0)
