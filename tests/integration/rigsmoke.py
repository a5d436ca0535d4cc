"""What the smoke tests of bench/'s rigs (test_bench_smoke, test_bench_memif,
test_stress_smoke) share: the rig run once, in quick mode, into a temporary
folder; its JSON read; sluice's clean exit checked; and whether the sluice
it runs links DPDK (the native stack's figures depend on it)."""

import json
import os
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
BUILD = Path(os.environ.get("SLUICE_BUILD_DIR") or REPO / "build")


class RigQuick:
    """A mixin for a unittest.TestCase: setUpClass runs `bench/RIG --quick`
    with rig_args(folder) and keeps cls.output, cls.rc and cls.data (the
    JSON at cls.json, None if it wrote none). Not a TestCase itself, so
    that no loader runs it without a rig."""

    rig = None           # "run" or "stress" (bench/RIG)
    prefix = None        # the temporary folder's prefix
    timeout = None       # seconds the rig may take

    @classmethod
    def rig_args(cls, out):
        """The rig's arguments for outputs in folder out; sets cls.json."""
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix=cls.prefix)
        args = cls.rig_args(Path(cls.tmp.name))
        p = subprocess.run(["/usr/bin/python3", str(REPO / "bench" / cls.rig), "--quick", *args],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=cls.timeout, stdin=subprocess.DEVNULL)
        cls.output = p.stdout.decode(errors="replace")
        cls.rc = p.returncode
        cls.data = json.loads(cls.json.read_text()) if cls.json.exists() else None

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_sluice_exited_cleanly(self):
        self.assertEqual(self.data["problems"], [])


def sluice_links_dpdk():
    """The rig's own test: does the sluice it runs link DPDK?"""
    binary = os.environ.get("SLUICE_BIN") or BUILD / "dataplane" / "sluice"
    p = subprocess.run(["ldd", str(binary)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return b"librte_eal" in p.stdout
