"""listeners[].trace_header (docs/configuration.md, "The trace header"):
sluice's own Received: line, with the client's TLS, in front of each
message it relays to Postfix. Real clients (swaks, Python's smtplib, a
raw CHUNKING client) through sluice to the harness's real Postfix; each
delivered message must carry the line, right above the message as the
client sent it, byte for byte (Postfix's own trace headers above it):

  - swaks over STARTTLS, a multipart/alternative message with a
    text/watch-html part (Apple Watch) between text/plain and text/html;
  - smtplib over STARTTLS, lines that start with dots (dot-stuffing);
  - BDAT (RFC 3030) in two chunks: the first chunk's size rewritten to
    count the line, the second untouched;
  - a plaintext client on the port-25 listener: "with ESMTP", no TLS;
  - a listener without trace_header adds nothing.
"""

import re
import smtplib
import socket
import unittest

from harness import (SENDER, Postfix, Sluice, client_source, compare_message,
                     load_example, make_message, message_id, no_verify_context, recipient,
                     run, scratch, stop_all, unique)

BASE = 43540                  # this module's ports: 43540-43549
PF = SL = None


def setUpModule():
    global PF, SL
    PF = Postfix().start()
    cfg = load_example("mail-front.yaml")
    be = [b for b in cfg["backends"] if b["name"] == "postfix"]
    cfg["backends"] = be
    cfg["hostname"] = "mx.trace.test"
    cfg["listeners"] = [
        {"name": "smtp", "address": f"127.0.0.1:{BASE}", "protocol": "smtp",
         "tls": "starttls", "backend": "postfix", "trace_header": True},
        {"name": "untraced", "address": f"127.0.0.1:{BASE + 1}", "protocol": "smtp",
         "tls": "starttls", "backend": "postfix"},
    ]
    SL = Sluice(cfg, "trace").start()


def tearDownModule():
    stop_all(SL, PF)


def watch_message(tag):
    """A multipart/alternative message as Apple Mail writes one for the
    Watch: text/plain, text/watch-html, text/html."""
    b = f"Apple-Mail=_{tag}"
    return (f"From: <{SENDER}>\r\nTo: <{recipient(tag)}>\r\nSubject: watch {tag}\r\n"
            f"Message-ID: {message_id(tag)}\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/alternative; boundary=\"{b}\"\r\n\r\n"
            f"--{b}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            "Meet at noon.\r\n.a line with a dot\r\n\r\n"
            f"--{b}\r\nContent-Type: text/watch-html; charset=us-ascii\r\n\r\n"
            "<b>Meet at noon.</b>\r\n\r\n"
            f"--{b}\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n"
            "<html><body><p>Meet at <i>noon</i>.</p></body></html>\r\n\r\n"
            f"--{b}--\r\n").encode()


class TraceHeader(unittest.TestCase):
    maxDiff = None

    def delivered(self, tag):
        got = PF.maildir_messages(message_id(tag).encode(), count=1, timeout=20)
        self.assertEqual(len(got), 1, f"one copy of {tag}")
        return got[0][1]

    def ours(self, delivered):
        """sluice's Received: lines in the delivered message (LF ends)."""
        return re.findall(rb"Received: from [^\n]*\n(?:\t[^\n]*\n)*?\tby mx\.trace\.test "
                          rb"\(sluice\)[^\n]*\n\t[^\n]*\n", delivered)

    def check(self, tag, sent, helo, proto, src, tls=True):
        d = self.delivered(tag)
        self.assertIsNone(compare_message(sent, d))
        ours = self.ours(d)
        self.assertEqual(len(ours), 1, d[:1500])
        line = ours[0].decode()
        # Right above the message the client sent, below Postfix's lines.
        self.assertTrue(d.endswith(ours[0] + sent.replace(b"\r\n", b"\n")), d[:1500])
        self.assertTrue(line.startswith(f"Received: from {helo} ([127."), line)
        self.assertIn(f"by mx.trace.test (sluice) with {proto};", line)
        log = SL.conn_log(*src)
        if tls:
            m = re.search(r"\(using (TLSv1\.[23]) with cipher (\S+) \((\d+)/(\d+) bits\)\n"
                          r"\t key-exchange (\S+)", line)
            self.assertIsNotNone(m, line)
            self.assertEqual(m.group(1), log["tls"], log)
            self.assertEqual(m.group(2), log["cipher"], log)
            self.assertIn(m.group(5), ("X25519", "ECDHE"))
        else:
            self.assertNotIn("(using ", line)
        return line

    def test_swaks_watch_html(self):
        tag = unique("watch")
        msg = watch_message(tag)
        data = scratch() / f"{tag}.eml"
        data.write_bytes(msg + b".\r\n")       # swaks strips a final "\r\n.\r\n"
        src = client_source()
        rc, out = run(["swaks", "--server", f"127.0.0.1:{BASE}", "--tls",
                       "--local-interface", src[0], "--local-port", str(src[1]),
                       "--ehlo", "watch.client.test",
                       "--from", SENDER, "--to", recipient(tag), "--data", f"@{data}"])
        self.assertEqual(rc, 0, out)
        line = self.check(tag, msg, "watch.client.test", "ESMTPS", src)
        print(f"\n  {line.strip()}", flush=True)

    def test_smtplib_dots(self):
        tag = unique("dots")
        msg = make_message(tag, body="..two dots\r\n.one dot\r\n.\r\nx\r\n")
        src = client_source()
        with smtplib.SMTP("127.0.0.1", BASE, local_hostname="dots.client.test",
                          source_address=src, timeout=20) as c:
            c.starttls(context=no_verify_context())
            c.ehlo("dots.client.test")
            c.sendmail(SENDER, [recipient(tag)], msg)
        self.check(tag, msg, "dots.client.test", "ESMTPS", src)

    def test_bdat_chunks(self):
        tag = unique("bdat")
        msg = make_message(tag)
        first, second = msg[:100], msg[100:]
        ctx = no_verify_context()
        src = client_source()
        with socket.create_connection(("127.0.0.1", BASE), timeout=20,
                                      source_address=src) as raw:
            f = raw.makefile("rb")

            def reply(fh):
                lines = []
                while True:
                    line = fh.readline().decode()
                    lines.append(line)
                    if line[3:4] != "-":
                        return lines

            reply(f)
            raw.sendall(b"EHLO bdat.client.test\r\n")
            reply(f)
            raw.sendall(b"STARTTLS\r\n")
            self.assertTrue(reply(f)[0].startswith("220"))
            t = ctx.wrap_socket(raw)
            tf = t.makefile("rb")
            t.sendall(b"EHLO bdat.client.test\r\n")
            caps = reply(tf)
            self.assertTrue(any("CHUNKING" in c for c in caps), caps)
            t.sendall(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{recipient(tag)}>\r\n".encode()
                      + f"BDAT {len(first)}\r\n".encode() + first
                      + f"BDAT {len(second)} LAST\r\n".encode() + second)
            answers = [reply(tf)[-1] for _ in range(4)]
            self.assertTrue(all(a.startswith("250") for a in answers), answers)
            t.sendall(b"QUIT\r\n")
            reply(tf)
            t.close()
        self.check(tag, msg, "bdat.client.test", "ESMTPS", src)

    def test_plaintext_client(self):
        tag = unique("plain")
        msg = make_message(tag)
        src = client_source()
        with smtplib.SMTP("127.0.0.1", BASE, local_hostname="plain.client.test",
                          source_address=src, timeout=20) as c:
            c.sendmail(SENDER, [recipient(tag)], msg)
        self.check(tag, msg, "plain.client.test", "ESMTP", src, tls=False)

    def test_off_by_default(self):
        tag = unique("untraced")
        msg = make_message(tag)
        with smtplib.SMTP("127.0.0.1", BASE + 1, source_address=client_source(),
                          timeout=20) as c:
            c.starttls(context=no_verify_context())
            c.sendmail(SENDER, [recipient(tag)], msg)
        d = self.delivered(tag)
        self.assertIsNone(compare_message(msg, d))
        self.assertEqual(self.ours(d), [])
        self.assertNotIn(b"(sluice)", d)


if __name__ == "__main__":
    unittest.main()
