#!/usr/bin/env python3
"""Mutation testing: each mutant of catalogue.txt (a named behaviour broken
on purpose) is applied alone to a copy of the source tree, which is built and
tested; a mutant is killed when a test fails or the build refuses it.

    python3 test/mutants/run.py [--full] [--only NAME-PREFIX] [--work DIR]

By default each mutant runs the tests named on its line (a ctest -R regex,
the suites of the layer it breaks); --full runs the whole suite each time
(about 20x slower). Prints one line a mutant and the score; exits 1 when a
mutant survives (or does not build: a mutant must compile to test anything). The copy and its build are kept in --work (default
/tmp/agents-mutants) and reused: a mutant rebuilds only what it touched.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def parse(path):
    """Blocks: '@@ name | file | tests', then '- ' lines (the text, exactly
    once in the file) and '+ ' lines (its replacement)."""
    muts, cur = [], None
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip("\n")
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("@@ "):
            name, file, tests = [x.strip() for x in line[3:].split("|", 2)]
            cur = {"name": name, "file": file, "tests": tests, "old": [], "new": []}
            muts.append(cur)
        elif line.startswith("-") and cur is not None:
            cur["old"].append(line[2:] if line.startswith("- ") else line[1:])
        elif line.startswith("+") and cur is not None:
            cur["new"].append(line[2:] if line.startswith("+ ") else line[1:])
        else:
            raise SystemExit(f"catalogue: cannot read: {line}")
    for m in muts:
        m["old"] = "\n".join(m["old"])
        m["new"] = "\n".join(m["new"])
    return muts


def sh(cmd, cwd, timeout):
    try:
        p = subprocess.run(cmd, cwd=cwd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout)
        return p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        return 124, (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--work", default="/tmp/agents-mutants")
    ap.add_argument("--catalogue", default=os.path.join(HERE, "catalogue.txt"))
    a = ap.parse_args()
    muts = [m for m in parse(a.catalogue) if m["name"].startswith(a.only)]
    src = os.path.join(a.work, "src")
    build = os.path.join(a.work, "build")
    os.makedirs(a.work, exist_ok=True)
    files = subprocess.check_output(["git", "ls-files"], cwd=ROOT, text=True).split("\n")
    for f in files:  # the tree as committed (plus what is being changed now)
        if not f:
            continue
        d = os.path.join(src, f)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        s = os.path.join(ROOT, f)
        if os.path.isfile(s):
            if not os.path.exists(d) or open(s, "rb").read() != open(d, "rb").read():
                shutil.copy(s, d)  # (a new mtime: the copy's build must see the change)
    shared = os.path.join(ROOT, "..", "shared")
    if os.path.isdir(shared) and not os.path.exists(os.path.join(a.work, "shared")):
        os.symlink(os.path.abspath(shared), os.path.join(a.work, "shared"))
    for m in muts:  # each mutant's text must be found exactly once
        text = open(os.path.join(src, m["file"]), encoding="utf-8").read()
        if text.count(m["old"]) != 1:
            raise SystemExit(f"{m['name']}: the text occurs {text.count(m['old'])} times in {m['file']}")
    rc, out = sh(f"cmake -S {src} -B {build} -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAG_BUILD_TESTS=ON "
                 f"-DAG_BUILD_BENCH=ON -DAG_SANITIZE=OFF >/dev/null && cmake --build {build} -j2", a.work, 3600)
    if rc:
        print(out[-3000:])
        raise SystemExit("the unmutated tree does not build")
    killed, survived, stillborn, t0 = 0, [], [], time.time()
    for m in muts:
        path = os.path.join(src, m["file"])
        orig = open(path, encoding="utf-8").read()
        open(path, "w", encoding="utf-8").write(orig.replace(m["old"], m["new"], 1))
        t1 = time.time()
        try:
            rc, out = sh(f"cmake --build {build} -j2", a.work, 1800)
            if rc:  # a mutant the compiler refuses tests nothing: not counted
                verdict = "stillborn (does not build; fix the mutant)"
            else:
                sel = "" if a.full else f"-R '{m['tests']}'"
                rc, out = sh(f"ctest {sel} -j2 --timeout 120 -E 'python_seed_examples|test_install'", build, 3600)
                verdict = "killed" if rc else "SURVIVED"
                if rc:
                    failed = re.findall(r"\d+ - (\S+) \(", out)
                    verdict += f" ({', '.join(failed[:3])}{', ...' if len(failed) > 3 else ''})"
        finally:
            open(path, "w", encoding="utf-8").write(orig)
            os.utime(path)
        if verdict.startswith("killed"):
            killed += 1
        elif verdict.startswith("stillborn"):
            stillborn.append(m["name"])
        else:
            survived.append(m["name"])
        print(f"{m['name']:<44} {verdict}  [{time.time() - t1:.0f} s]", flush=True)
    sh(f"cmake --build {build} -j2", a.work, 1800)  # the copy back to its own state
    n = len(muts) - len(stillborn)
    print(f"\n{killed} of {n} mutants killed ({100.0 * killed / n if n else 0:.1f} %) in {time.time() - t0:.0f} s"
          f"{' (full suite each)' if a.full else ''}")
    if survived:
        print("survived: " + ", ".join(survived))
    if stillborn:
        print("stillborn (not counted): " + ", ".join(stillborn))
    return 1 if survived or stillborn else 0


if __name__ == "__main__":
    sys.exit(main())
