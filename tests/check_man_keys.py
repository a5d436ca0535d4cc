#!/usr/bin/python3
"""The configuration's keys in man/sluice.yaml.5.scd against the schema.

    tests/check_man_keys.py CONFIG_KEYS MANPAGE

CONFIG_KEYS is tests/tools/config_keys, which prints every key path of the
libcyaml schema (firmware-config/config.c) one a line; MANPAGE is the scdoc
source, where each key is a line of its own, the key in bold and its
default in brackets: `*listeners[].tls* (required)`. TAP: every schema key is in the page, and
every key of the page is in the schema; the ones missing are named.
"""

import re
import subprocess
import sys

KEY_LINE = re.compile(r"^\*([a-z0-9_]+(?:\[\])?(?:\.[a-z0-9_]+(?:\[\])?)*)\*(?: \(.*\))?$")


def main():
    tool, page = sys.argv[1], sys.argv[2]
    schema = subprocess.run([tool], check=True, stdout=subprocess.PIPE,
                            text=True).stdout.split()
    with open(page) as f:
        man = [m.group(1) for m in map(KEY_LINE.match, f) if m]
    dup = sorted({k for k in man if man.count(k) > 1})
    checks = [
        ("every key of the schema is described in " + page,
         [k for k in schema if k not in man]),
        ("every key the page describes is in the schema", sorted(set(man) - set(schema))),
        ("each key is described once", dup),
    ]
    print(f"1..{len(checks)}")
    bad = 0
    for i, (name, missing) in enumerate(checks, 1):
        if missing:
            bad += 1
            print(f"not ok {i} - {name}")
            for k in missing:
                print(f"# {k}")
        else:
            print(f"ok {i} - {name}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
