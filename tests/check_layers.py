#!/usr/bin/python3
"""The layering of DESIGN.md §7 as a test: which part may include which.

    tests/check_layers.py [ROOT]     (default: this checkout)

Reads every `#include "..."` line of the .c, .h and .def files under ROOT,
resolves each one as the compiler does (the including file's folder first,
then the include directories of `inc = include_directories(...)` in
ROOT/meson.build, in order), names the part that holds the included file,
and checks each rule below. Includes that resolve to no file of the tree
(generated headers such as sluice-build.h) are not judged.

Output is TAP, one test per rule, so that tests/run counts each; a broken
rule is `not ok`, followed by one `# FILE:LINE: includes "X" (X is in PART)`
line per offending include. Exit status 1 if any rule is broken.
docs/architecture.md draws the same arrows.
"""

import os
import re
import sys
from pathlib import Path

SOURCES = (".c", ".h", ".def")
NOT_SOURCE_DIRS = {".git", "corpus"}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
INC_DIRS = re.compile(r"^inc\s*=\s*include_directories\(([^)]*)\)", re.M)

# Path prefix -> part, most specific first.
PARTS = (
    ("lib/", "lib"),
    ("dataplane/net/", "net"),
    ("dataplane/io/", "io"),
    ("dataplane/session/", "session"),
    ("dataplane/proto/", "proto"),
    ("dataplane/quirk/", "quirk"),
    ("dataplane/", "core"),          # main.c, core.c, counters, log...
    ("tls/", "tls"),
    ("firmware-config/", "config"),
    ("control/", "control"),
    ("bench/", "bench"),
    ("tests/", "tests"),
)
DATAPLANE = {"core", "net", "io", "session", "proto", "quirk"}

# (name, the part it applies to or None for every part, is the include
#  forbidden: fn(from_part, to_part)). The names are what a failure says.
RULES = (
    ("net/ uses only lib/ and itself",
     "net", lambda src, dst: dst not in ("net", "lib")),
    ("io/ does not include session/ or proto/ (callbacks instead of up-calls)",
     "io", lambda src, dst: dst in ("session", "proto")),
    ("proto/ does no I/O: it does not include io/, net/ or session/",
     "proto", lambda src, dst: dst in ("io", "net", "session")),
    ("tls/ does not include dataplane/ (only the shared lib/)",
     "tls", lambda src, dst: dst in DATAPLANE),
    ("control/ (sluice-control, sluicectl) does not include dataplane/: it talks to it over a socket",
     "control", lambda src, dst: dst in DATAPLANE),
    ("nothing outside bench/ includes bench/",
     None, lambda src, dst: dst == "bench" and src != "bench"),
)


def part_of(rel):
    """The part that holds the file at rel (a path relative to the root)."""
    for prefix, part in PARTS:
        if rel.startswith(prefix):
            return part
    return "top"


def include_dirs(root):
    """The top meson.build's `inc` include directories, in order."""
    text = (root / "meson.build").read_text()
    m = INC_DIRS.search(text)
    if not m:
        raise SystemExit(f"{root}/meson.build: no `inc = include_directories(...)`")
    return [root / d for d in re.findall(r"'([^']*)'", m.group(1))]


def sources(root):
    """Every .c, .h and .def file under root, but in build and VCS folders."""
    for d, subdirs, files in os.walk(root):
        subdirs[:] = sorted(s for s in subdirs
                            if s not in NOT_SOURCE_DIRS and not s.startswith("build"))
        for f in sorted(files):
            if f.endswith(SOURCES):
                yield Path(d) / f


def resolve(root, dirs, src, name):
    """The file that `#include "name"` in src names, or None."""
    for d in [src.parent] + dirs:
        cand = (d / name).resolve()
        if cand.is_file() and cand.is_relative_to(root):
            return cand
    return None


def check(root):
    """Returns [(rule index, 'FILE:LINE: ...')] for every broken rule."""
    root = root.resolve()
    dirs = include_dirs(root)
    found = []
    for src in sources(root):
        rel = src.relative_to(root).as_posix()
        src_part = part_of(rel)
        for n, line in enumerate(src.read_text(errors="replace").splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            dst = resolve(root, dirs, src, m.group(1))
            if dst is None:
                continue
            dst_part = part_of(dst.relative_to(root).as_posix())
            for i, (_, applies, forbidden) in enumerate(RULES):
                if applies in (None, src_part) and forbidden(src_part, dst_part):
                    found.append((i, f'{rel}:{n}: includes "{m.group(1)}" '
                                     f'({dst.relative_to(root).as_posix()} is in {dst_part}/)'))
    return found


def main(argv):
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    found = check(root)
    print(f"1..{len(RULES)}")
    for i, (name, _, _) in enumerate(RULES):
        bad = [where for k, where in found if k == i]
        print(f"{'not ok' if bad else 'ok'} {i + 1} - {name}")
        for where in bad:
            print(f"# {where}: breaks \"{name}\"")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
