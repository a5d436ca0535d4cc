"""Client bytes in sluice's log (issue 12, finding 1; lib/logsafe.h).

A client sends an SNI holding LF, double quotes, spaces and '=': the text
after the LF looks like a whole log line of its own, and the rest like more
keys. sluice logs the session in one line, the SNI written as hex; no line
begins with the forged text and no key appears twice. A plain host name is
logged as it is.
"""

import re
import unittest

from harness import (Postfix, Sluice, load_example, poll, run, shifted, stop_all, unique)

BASE = 40850           # listener ports: BASE + n (test_privileges has 40800-40849)

PF = None
SL = None


def setUpModule():
    global PF, SL
    PF = Postfix().start()
    cfg = load_example("mail-front.yaml")
    cfg["listeners"] = [l for l in cfg["listeners"] if l["name"] == "submissions"]
    SL = Sluice(shifted(cfg, BASE - 2465), "logsafe").start()


def tearDownModule():
    stop_all(SL, PF)


def s_client(servername):
    host, port = SL.addr("submissions")
    return run(["openssl", "s_client", "-connect", f"{host}:{port}", "-servername", servername,
                "-ign_eof"], input=b"QUIT\r\n", timeout=20)


def conn_lines(marker):
    """The log's session lines (conn=...) that hold marker anywhere."""
    return [l for l in SL.log_lines() if marker in l]


class LogEscaping(unittest.TestCase):

    def test_forged_sni_is_one_escaped_line(self):
        tag = unique("forged").replace("-", "")
        # What an attacker would like to see in the log: a session line of
        # its own, and a second sni= on the real one.
        forged = f'{tag}.test\nsluice[1]: conn=1 listener=smtp result=ok reason="{tag}" sni=x'
        rc, out = s_client(forged)
        self.assertIn("Verify return code", out, out)   # the handshake took place
        want = "sni=hex:" + forged.encode().hex()[:254]
        found = []

        def logged():
            found[:] = [l for l in SL.log_lines() if want in l]
            return found
        poll(logged, 10)
        self.assertEqual(len(found), 1, SL.log_text()[-3000:])
        line = found[0]
        self.assertRegex(line, r"^sluice\[\d+\]: conn=[0-9a-f]+ listener=submissions ")
        self.assertEqual(len(re.findall(r" sni=", line)), 1, line)
        self.assertNotIn(tag, line, "no byte of the SNI raw")
        for l in SL.log_lines():
            self.assertFalse(l.startswith("sluice[1]:"), l)
            self.assertNotIn(f'reason="{tag}"', l)

    def test_host_name_sni_is_kept(self):
        name = unique("mx").replace("-", "") + ".example.test"
        rc, out = s_client(name)
        self.assertIn("Verify return code", out, out)
        poll(lambda: conn_lines(f" sni={name} "), 10)
        self.assertEqual(len(conn_lines(f" sni={name} ")), 1, SL.log_text()[-3000:])


if __name__ == "__main__":
    unittest.main()
