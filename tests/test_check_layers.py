#!/usr/bin/python3
"""Self-test of tests/check_layers.py: it passes on a copy of this tree, and
fails on a copy with one forbidden include added, naming the file, the line
and the rule. One TAP test per scenario (tests/run counts each).
"""

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHECK = HERE / "check_layers.py"

spec = importlib.util.spec_from_file_location("check_layers", CHECK)
layers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(layers)

# (a file of the folder, the include line, the rule it must break). The
# file is made for the test (so that the scenarios do not depend on which
# files exist today), with an allowed include before the bad one. Each also
# proves that the include is resolved the compiler's way: by the including
# file's folder first, then meson's include directories ("core.h" from
# tls/ is dataplane/core.h).
BAD = (
    ("dataplane/net/layer_probe.c", '#include "io/io.h"', 0),
    ("dataplane/net/layer_probe.h", '#include "core.h"', 0),
    ("dataplane/net/layer_probe.c", '#include "tls.h"', 0),
    ("dataplane/io/layer_probe.c", '#include "session/session.h"', 1),
    ("dataplane/io/layer_probe.h", '#include "proto/proto.h"', 1),
    ("dataplane/proto/layer_probe.c", '#include "net/net.h"', 2),
    ("dataplane/proto/layer_probe.c", '#include "io/io.h"', 2),
    ("dataplane/proto/layer_probe.c", '#include "session/session.h"', 2),
    ("tls/layer_probe.c", '#include "core.h"', 3),
    ("tls/layer_probe.h", '#include "session/session.h"', 3),
    ("control/layer_probe.c", '#include "core.h"', 4),
    ("control/layer_probe.c", '#include "session/session.h"', 4),
    ("dataplane/session/layer_probe.c", '#include "../../bench/hist.h"', 5),
)


def copy_tree(dst):
    """The top meson.build and every source file the check reads."""
    shutil.copy(REPO / "meson.build", dst / "meson.build")
    for src in layers.sources(REPO):
        out = dst / src.relative_to(REPO)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, out)
    (dst / "bench").mkdir(exist_ok=True)
    (dst / "bench" / "hist.h").touch()


def run(root):
    p = subprocess.run([sys.executable, str(CHECK), str(root)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def add_include(root, rel, line):
    """Write root/rel: a comment, an allowed include (lib/), then line.
    Returns the line number of line."""
    lines = ["/* made by tests/test_check_layers.py */", '#include "buf.h"', "", line]
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text("\n".join(lines) + "\n")
    return len(lines)


def main():
    results = []
    with tempfile.TemporaryDirectory(prefix="sluice-layers-") as tmp:
        clean = Path(tmp) / "clean"
        clean.mkdir()
        copy_tree(clean)
        rc, out = run(clean)
        results.append(("the tree as it is passes", rc == 0 and "not ok" not in out, out))
        for rel, inc, rule in BAD:
            root = Path(tmp) / f"bad{len(results)}"
            shutil.copytree(clean, root)
            n = add_include(root, rel, inc)
            rc, out = run(root)
            name = layers.RULES[rule][0]
            want = f"{rel}:{n}: includes {inc.split(None, 1)[1]}"
            ok = (rc == 1 and f"not ok {rule + 1} - {name}" in out and want in out
                  and out.count("not ok") == 1 and f'breaks "{name}"' in out)
            results.append((f'{rel}: {inc} fails "{name}"', ok, out))
    print(f"1..{len(results)}")
    for i, (name, ok, out) in enumerate(results, 1):
        print(f"{'ok' if ok else 'not ok'} {i} - {name}")
        if not ok:
            for line in out.splitlines():
                print(f"#   {line}")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
