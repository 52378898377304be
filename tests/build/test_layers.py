#!/usr/bin/env python3
"""The include direction of src/ (docs/DESIGN.md, "Layers").

    core <- proto <- io <- kube <- cmd

A file includes headers of its own folder by name ("engine.h") and of a
lower layer by path ("core/engine.h"). This scans every quoted #include
under src/ and fails on one that reaches a higher layer, on a header of
another folder included without its folder, or on a path spelled with
"..": so an upward include cannot hide and cannot be written by accident.

Usage: test_layers.py [SRC_DIR]   (default: the src/ next to tests/)
"""

import os
import re
import sys
import tempfile

LAYERS = ["core", "proto", "io", "kube", "cmd"]

# Known upward includes, each with the reason it is still there. An
# entry names a module (its .c and .h) and the header it may include; an
# entry nothing needs any more fails the test, so the list only shrinks.
ALLOWED = set()

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)


def strip_comments(text):
    """C comments out, line breaks kept (so line numbers stay right)."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r"/\*.*?\*/|//[^\n]*", blank, text, flags=re.DOTALL)


def check(src):
    """Returns the list of problems found under `src`."""
    problems = []
    used = set()
    for dirpath, _, names in sorted(os.walk(src)):
        for name in sorted(names):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, src).replace(os.sep, "/")
            folder = rel.split("/")[0] if "/" in rel else ""
            if folder not in LAYERS:
                problems.append(f"{rel}: not in a layer folder "
                                f"({', '.join(LAYERS)})")
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                text = strip_comments(f.read())
            for m in INCLUDE.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                where = f"{rel}:{line}: #include \"{m.group(1)}\""
                inc = m.group(1)
                if ".." in inc.split("/") or inc.startswith("/"):
                    problems.append(f"{where}: spell a header of another "
                                    "folder from src/ (\"core/util.h\")")
                    continue
                if "/" not in inc:
                    # By name: must be a header of the file's own folder.
                    if not os.path.isfile(os.path.join(dirpath, inc)):
                        problems.append(f"{where}: no such header in "
                                        f"{folder}/; a header of another "
                                        "folder is included by path")
                    continue
                target = inc.split("/")[0]
                if not os.path.isfile(os.path.join(src, inc)):
                    problems.append(f"{where}: no such header under src/")
                    continue
                if target not in LAYERS:
                    problems.append(f"{where}: {target}/ is not a layer")
                    continue
                if target == folder:
                    problems.append(f"{where}: a header of the same folder "
                                    "is included by name")
                    continue
                if LAYERS.index(target) < LAYERS.index(folder):
                    continue
                module = rel.rsplit(".", 1)[0]
                if (module, inc) in ALLOWED:
                    used.add((module, inc))
                    continue
                problems.append(f"{where}: {folder}/ may include only from "
                                "the layers below it ("
                                f"{', '.join(LAYERS[:LAYERS.index(folder)]) or 'none'})")
    for module, inc in sorted(ALLOWED - used):
        problems.append(f"allow-list: {module}.[ch] no longer includes "
                        f"\"{inc}\"; remove the entry from {__file__}")
    return problems


def self_test():
    """The checker catches an upward include (and accepts a clean tree),
    so that a pass of the real tree means something."""
    global ALLOWED
    saved = ALLOWED
    ALLOWED = {("kube/mirror", "cmd/cli.h")}  # an exception to test with
    try:
        self_test_tree()
    finally:
        ALLOWED = saved


def self_test_tree():
    with tempfile.TemporaryDirectory() as tmp:
        def write(rel, text):
            os.makedirs(os.path.dirname(os.path.join(tmp, rel)),
                        exist_ok=True)
            with open(os.path.join(tmp, rel), "w") as f:
                f.write(text)
        write("core/a.h", "/* #include \"io/b.h\" in a comment */\n")
        write("io/b.h", '#include "core/a.h"\n')
        write("cmd/c.c", '#include "io/b.h"\n#include "core/a.h"\n')
        write("kube/mirror.h", '#include "cmd/cli.h"\n')
        write("cmd/cli.h", "\n")
        clean = check(tmp)
        assert clean == [], clean
        write("core/a.c", '#include "a.h"\n#include "io/b.h"\n')
        up = check(tmp)
        assert len(up) == 1 and up[0].startswith("core/a.c:2:"), up
        write("core/a.c", '#include "../io/b.h"\n')
        assert len(check(tmp)) == 1
        os.remove(os.path.join(tmp, "core/a.c"))
        write("kube/mirror.h", "\n")
        stale = check(tmp)
        assert len(stale) == 1 and "allow-list" in stale[0], stale


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    src = sys.argv[1] if len(sys.argv) > 1 else \
        os.path.join(here, "..", "..", "src")
    self_test()
    problems = check(os.path.abspath(src))
    for p in problems:
        print(f"layers: {p}", file=sys.stderr)
    if problems:
        print(f"layers: {len(problems)} problem(s); the rule is in "
              "docs/DESIGN.md, \"Layers\"", file=sys.stderr)
        return 1
    print("layers: every include in src/ goes down a layer or stays in "
          f"its folder ({len(ALLOWED)} known exceptions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
