#!/usr/bin/env python3
"""make mutants: apply each hand-picked one-line mutation of src/ (tests/mutants/list) to a
copy of the tree, one at a time, rebuild the library and the tests that mutant names, and run
them. Every mutant must be caught (a named test fails or times out); a surviving mutant, a
pattern that does not match exactly once, or a mutant that does not compile fails the run.
The real tree is never edited: everything happens in a temporary directory.

    tests/mutants/run.py [--list FILE] [--only N,...] [--keep]

Entries of the list are blocks of `key: value` lines separated by blank lines:
    file:    path under the repository (src/...)
    find:    the exact original text (a unique substring; "\\n" stands for a line break)
    replace: what it becomes
    why:     what behaviour the mutant removes
    tests:   binary[:cmocka test name] ... run in order until one fails
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CC = os.environ.get("CC", "cc")
CFLAGS = ["-D_GNU_SOURCE", "-Iinclude", "-O2", "-g", "-std=c11", "-Wall", "-Wextra", "-Werror",
          "-fPIC"]
TEST_TIMEOUT = int(os.environ.get("MUTANT_TEST_TIMEOUT", "30"))


def parse(path):
    entries, cur = [], {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if line.startswith("#"):
                continue
            if not line.strip():
                if cur:
                    entries.append(cur)
                    cur = {}
                continue
            key, sep, val = line.partition(":")
            if not sep or key not in ("file", "find", "replace", "why", "tests"):
                sys.exit(f"{path}:{n}: expected 'file|find|replace|why|tests: value', got {line!r}")
            if key in cur:
                sys.exit(f"{path}:{n}: '{key}' twice in one entry")
            cur[key] = val[1:] if val.startswith(" ") else val
            cur.setdefault("line", n)
    if cur:
        entries.append(cur)
    for e in entries:
        for k in ("file", "find", "replace", "why", "tests"):
            if k not in e:
                sys.exit(f"{path}:{e['line']}: entry lacks '{k}'")
        e["find"] = e["find"].replace("\\n", "\n")
        e["replace"] = e["replace"].replace("\\n", "\n")
    return entries


def run(cmd, cwd, timeout=None, env=None):
    return subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout, env=env, text=True, errors="replace")


class Tree:
    """A copy of include/, src/ and tests/ with objects built once; a mutant rebuilds one
    (or all of them, for a header)."""

    def __init__(self, root):
        self.root = root
        for d in ("include", "src", "tests"):
            shutil.copytree(os.path.join(TOP, d), os.path.join(root, d),
                            ignore=shutil.ignore_patterns("node_modules", "mutants"))
        self.obj = os.path.join(root, "obj")
        os.makedirs(self.obj)
        self.lib_srcs = sorted(f for f in os.listdir(os.path.join(root, "src")) if f.endswith(".c"))
        self.bins = {}

    def compile(self, src):
        out = os.path.join(self.obj, src.replace("/", "_")[:-2] + ".o")
        r = run([CC] + CFLAGS + ["-c", "-o", out, src], self.root)
        return out if r.returncode == 0 else (None, r.stdout)

    def build_lib(self):
        objs = []
        for s in self.lib_srcs:
            o = self.compile("src/" + s)
            if isinstance(o, tuple):
                return o[1]
            objs.append(o)
        lib = os.path.join(self.obj, "libshmbus.a")
        if os.path.exists(lib):
            os.unlink(lib)
        r = run(["ar", "rcs", lib] + objs, self.root)
        return None if r.returncode == 0 else r.stdout

    def rebuild(self, path):
        """Recompile what `path` changes and the archive: one library file, or for a header
        every library file (and, for a public one, the tests too, which include it). None,
        or the compiler's output."""
        if path.endswith(".h"):
            if path.startswith("include/"):
                self.bins = {}  # relinked from fresh objects by link()
            return self.build_lib()
        o = self.compile(path)
        if isinstance(o, tuple):
            return o[1]
        r = run(["ar", "rcs", os.path.join(self.obj, "libshmbus.a"), o], self.root)
        return None if r.returncode == 0 else r.stdout

    def link(self, name):
        """Link tests/<name>.c against the current library. None, or the linker's output."""
        if name not in self.bins:
            o = self.compile(f"tests/{name}.c")
            h = self.compile("tests/helpers.c")
            for x in (o, h):
                if isinstance(x, tuple):
                    return x[1]
            self.bins[name] = (o, h)
        o, h = self.bins[name]
        r = run([CC, "-o", os.path.join(self.obj, name), o, h,
                 os.path.join(self.obj, "libshmbus.a"), "-lcmocka", "-pthread", "-lrt"], self.root)
        return None if r.returncode == 0 else r.stdout


def ipc_wrapper():
    """Run each test in a private IPC namespace when we may (root, or the isolation wrapper),
    so a mutant that crashes a test leaves nothing behind in the caller's namespace."""
    try:
        if run(["unshare", "--ipc", "true"], TOP, timeout=10).returncode == 0:
            return ["unshare", "--ipc"]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return []


def run_test(tree, spec, wrap):
    """Run one test: returns (caught, how)."""
    name, _, case = spec.partition(":")
    tmp = tempfile.mkdtemp(prefix="mutant-test.")
    env = dict(os.environ, SHMBUS_DIR=os.path.join(tmp, "run"), TEST_TMPDIR=tmp)
    if case:
        env["TH_FILTER"] = case
    try:
        r = run(wrap + [os.path.join(tree.obj, name)], tmp, timeout=TEST_TIMEOUT, env=env)
        if r.returncode == 0 and case and not re.search(r"(?<![0-9])1 test\(s\) run", r.stdout):
            sys.exit(f"mutants: {spec}: no such test (the filter ran nothing)")
        return r.returncode != 0, f"exit {r.returncode}", r.stdout
    except subprocess.TimeoutExpired:
        return True, f"timed out after {TEST_TIMEOUT}s", ""
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    args = sys.argv[1:]
    listfile = os.path.join(TOP, "tests/mutants/list")
    only, keep = None, False
    while args:
        a = args.pop(0)
        if a == "--list":
            listfile = args.pop(0)
        elif a == "--only":
            only = {int(x) for x in args.pop(0).split(",")}
        elif a == "--keep":
            keep = True
        else:
            sys.exit(__doc__)
    entries = parse(listfile)

    # Every pattern must match exactly once in today's tree before anything runs.
    bad = 0
    for i, e in enumerate(entries, 1):
        with open(os.path.join(TOP, e["file"])) as f:
            n = f.read().count(e["find"])
        if n != 1:
            print(f"mutant {i} ({e['file']}, list line {e['line']}): the pattern matches {n} "
                  f"times, not once: re-point it\n    {e['find']!r}")
            bad += 1
    if bad:
        sys.exit(f"mutants: {bad} pattern(s) to fix in {listfile}")

    root = tempfile.mkdtemp(prefix="shmbus-mutants.")
    t0 = time.monotonic()
    try:
        tree = Tree(root)
        err = tree.build_lib()
        if err:
            sys.exit("mutants: the unmutated library does not build:\n" + err)
        wrap = ipc_wrapper()
        # The unmutated tree must pass every test the list uses, or a "caught" means nothing.
        specs = []
        for e in entries:
            for s in e["tests"].split():
                if s not in specs:
                    specs.append(s)
        for s in specs:
            err = tree.link(s.partition(":")[0])
            if err:
                sys.exit(f"mutants: {s} does not build:\n{err}")
            caught, how, out = run_test(tree, s, wrap)
            if caught:
                sys.exit(f"mutants: {s} fails without any mutation ({how}):\n{out[-3000:]}")
        print(f"baseline: {len(specs)} test runs pass unmutated ({time.monotonic() - t0:.0f} s)")

        survived, n = [], 0
        for i, e in enumerate(entries, 1):
            if only and i not in only:
                continue
            n += 1
            path = os.path.join(root, e["file"])
            with open(path) as f:
                orig = f.read()
            with open(path, "w") as f:
                f.write(orig.replace(e["find"], e["replace"], 1))
            t1 = time.monotonic()
            try:
                err = tree.rebuild(e["file"])
                if err:
                    print(f"ERROR  mutant {i:2d} does not compile: {e['why']}\n{err}")
                    survived.append(i)
                    continue
                verdict = None
                for s in e["tests"].split():
                    err = tree.link(s.partition(":")[0])
                    if err:
                        sys.exit(f"mutants: link {s}:\n{err}")
                    caught, how, _ = run_test(tree, s, wrap)
                    if caught:
                        verdict = f"{s} ({how})"
                        break
                dt = time.monotonic() - t1
                if verdict:
                    print(f"CAUGHT mutant {i:2d} {e['file']}: {e['why']} -- by {verdict}, {dt:.1f}s")
                else:
                    print(f"SURVIVED mutant {i:2d} {e['file']}: {e['why']} -- "
                          f"{e['tests']} all passed")
                    survived.append(i)
            finally:
                with open(path, "w") as f:
                    f.write(orig)
                tree.rebuild(e["file"])
        total = time.monotonic() - t0
        print(f"mutants: {n - len(survived)} of {n} caught, {len(survived)} survived "
              f"({total:.0f} s)")
        if survived:
            print("survivors: " + " ".join(str(i) for i in survived))
            sys.exit(1)
    finally:
        if keep:
            print("kept " + root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
