"""protocol ftp (docs/ftp.md): FTP over TLS (RFC 4217) through sluice to a
real vsftpd in plain mode, started by this module on its own config
(anonymous upload into a scratch folder). sluice answers AUTH TLS, PBSZ and
PROT, rewrites the backend's PASV/EPSV answers to ports of its own and
relays each data connection under TLS; a data connection's TLS session
must resume the control connection's (ftp.require_resumption, on by
default), as Windows Schannel and FileZilla Server insist.

  - curl --ssl-reqd: upload and download of 10 MiB, sha256 equal (curl
    resumes the control session on its data connections);
  - lftp (ftp:ssl-force, ftp:ssl-protect-data): the same;
  - implicit FTPS (curl ftps://);
  - Python's ftplib.FTP_TLS, which does not resume: its data connection
    refused, counted and logged; a subclass that passes the control
    session to wrap_socket downloads the file;
  - a TLS 1.2 client without the extended master secret (Python ssl with
    SSL_OP_NO_EXTENDED_MASTER_SECRET) counted, and refused where
    ftp.require_ems is set;
  - PORT refused (502); PROT C refused (534);
  - a data connection from another address (127.0.0.2) closed, counted
    and logged;
  - a data connection resuming another control connection's session
    refused (TLS 1.3 and TLS 1.2 tickets); TLS 1.2 session-ID resumption
    accepted;
  - a backend whose 227 names another host (a scripted server in the
    test): 425, counted, logged, no data listener (the FTP bounce).
"""

import ftplib
import hashlib
import io
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import unittest

from harness import Sluice, listening, run, scratch, stop_all, tool, wait_until

BASE = 44400                  # this module's ports: 44300-44449
VSFTPD_PORT = BASE + 21
SIZE = 10 * 1024 * 1024
SSL_OP_NO_EXTENDED_MASTER_SECRET = 1   # OpenSSL 3.0's bit 0 (ssl.h)
VS = SL = FAKE = None
ROOT = None


class Vsftpd:
    """vsftpd in the foreground on 127.0.0.1:VSFTPD_PORT, plain FTP,
    anonymous upload into ROOT/pub, passive ports BASE..BASE+19."""

    def __init__(self, root):
        self.root = root
        self.conf = root / "vsftpd.conf"
        self.log = root / "vsftpd.log"
        self.proc = None

    def start(self, timeout=10):
        (self.root / "pub").mkdir(parents=True, exist_ok=True)
        (self.root / "empty").mkdir(exist_ok=True)
        os.chmod(self.root, 0o755)
        os.chmod(self.root / "pub", 0o777)
        self.conf.write_text("\n".join([
            "listen=YES", "listen_ipv6=NO", "listen_address=127.0.0.1",
            f"listen_port={VSFTPD_PORT}", "background=NO",
            "anonymous_enable=YES", f"anon_root={self.root}", "no_anon_password=YES",
            "anon_upload_enable=YES", "anon_mkdir_write_enable=YES", "write_enable=YES",
            "anon_umask=022", "local_enable=NO", "allow_writeable_chroot=YES",
            f"secure_chroot_dir={self.root / 'empty'}",
            "pasv_enable=YES", f"pasv_min_port={BASE}", f"pasv_max_port={BASE + 19}",
            # A refused data connection: the client hears 425 soon.
            "accept_timeout=5", "connect_timeout=5", "seccomp_sandbox=NO",
            # its transfer log: "OK UPLOAD" or "FAIL UPLOAD" per file
            "xferlog_enable=YES", f"vsftpd_log_file={self.log}", ""]))
        self.proc = subprocess.Popen([tool("vsftpd"), str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until(lambda: listening("127.0.0.1", VSFTPD_PORT) or self.proc.poll() is not None,
                   timeout, "vsftpd listening")
        assert self.proc.poll() is None, "vsftpd exited at start"
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(10)


class FakeFtp(threading.Thread):
    """A scripted FTP server whose PASV answer names another host than its
    own (an FTP bounce attempt): 220, USER/PASS 230, PASV 227 naming
    192.0.2.1, FEAT 211, QUIT 221, anything else 200."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        with c:
            f = c.makefile("rb")
            c.sendall(b"220 fake\r\n")
            for line in f:
                verb = line.split()[0].upper() if line.split() else b""
                if verb == b"QUIT":
                    c.sendall(b"221 bye\r\n")
                    return
                c.sendall({b"USER": b"331 pass\r\n", b"PASS": b"230 in\r\n",
                           b"FEAT": b"211-Features:\r\n PASV\r\n211 End\r\n",
                           b"PASV": b"227 Entering Passive Mode (192,0,2,1,4,1).\r\n"}
                          .get(verb, b"200 ok\r\n"))

    def stop(self):
        self.sock.close()


def setUpModule():
    global VS, SL, ROOT, FAKE
    ROOT = scratch() / f"ftp-{os.getpid()}"
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    VS = Vsftpd(ROOT).start()
    FAKE = FakeFtp(BASE + 22)
    FAKE.start()
    data = {"data_ports": f"{BASE - 100}-{BASE - 51}", "data_address": "127.0.0.1"}
    cfg = {
        "hostname": "ftp.sluice.test",
        "cores": 1,
        "workers": 1,
        "log": "stderr",
        "run_as_root": True,
        "backends": [{"name": "vsftpd", "protocol": "ftp", "proxy": "none",
                      "servers": [f"127.0.0.1:{VSFTPD_PORT}"]},
                     {"name": "fake", "protocol": "ftp", "proxy": "none",
                      "servers": [f"127.0.0.1:{BASE + 22}"]}],
        "listeners": [
            {"name": "ftp", "address": f"127.0.0.1:{BASE + 1}", "protocol": "ftp",
             "tls": "required", "backend": "vsftpd", "ftp": dict(data)},
            {"name": "ftps", "address": f"127.0.0.1:{BASE + 2}", "protocol": "ftp",
             "tls": "implicit", "backend": "vsftpd", "ftp": dict(data)},
            {"name": "ems", "address": f"127.0.0.1:{BASE + 3}", "protocol": "ftp",
             "tls": "required", "backend": "vsftpd",
             "ftp": dict(data, require_ems=True)},
            {"name": "bounce", "address": f"127.0.0.1:{BASE + 4}", "protocol": "ftp",
             "tls": "required", "backend": "fake", "ftp": dict(data)},
            {"name": "slow", "address": f"127.0.0.1:{BASE + 5}", "protocol": "ftp",
             "tls": "required", "backend": "vsftpd", "ftp": dict(data),
             "timeouts": {"handshake": 2}},
            {"name": "v6", "address": f"[::1]:{BASE + 6}", "protocol": "ftp",
             "tls": "required", "backend": "vsftpd",
             "ftp": dict(data, data_address="::1")},
        ],
    }
    try:
        SL = Sluice(cfg, "ftp").start()
    except BaseException:
        tearDownModule()    # unittest does not when setUpModule fails
        raise


def tearDownModule():
    stop_all(SL)
    if FAKE:
        FAKE.stop()
    if VS:
        VS.stop()
    if ROOT:
        shutil.rmtree(ROOT, ignore_errors=True)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def random_file(name):
    p = scratch() / f"{name}-{os.getpid()}.bin"
    p.write_bytes(os.urandom(SIZE))
    return p


def client_ctx(tls12=False, ems=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if not ems:
        ctx.options |= SSL_OP_NO_EXTENDED_MASTER_SECRET
    return ctx


class Resuming(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS
    session (what Schannel and FileZilla do; ftplib does not)."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host,
                                            session=self.sock.session)
        return conn, size


def login(cls=Resuming, port=BASE + 1, ctx=None, source="127.0.0.1"):
    f = cls(context=ctx or client_ctx(), timeout=30,
            source_address=(source, 0))
    f.connect("127.0.0.1", port)
    f.auth()
    f.login()
    f.prot_p()
    return f


class Ftp(unittest.TestCase):
    def counters(self):
        return SL.counters()

    def delta(self, before, name):
        return self.counters().get(name, 0) - before.get(name, 0)

    def test_curl_upload_download(self):
        src = random_file("curl-up")
        before = self.counters()
        run([tool("curl"), "-sS", "--ssl-reqd", "-k", "-T", str(src),
             f"ftp://127.0.0.1:{BASE + 1}/pub/curl.bin"], timeout=120)
        self.assertEqual(sha256(ROOT / "pub" / "curl.bin"), sha256(src))
        down = scratch() / f"curl-down-{os.getpid()}.bin"
        run([tool("curl"), "-sS", "--ssl-reqd", "-k", "-o", str(down),
             f"ftp://127.0.0.1:{BASE + 1}/pub/curl.bin"], timeout=120)
        self.assertEqual(sha256(down), sha256(src))
        after = self.counters()
        self.assertGreaterEqual(after["ftp_data_resumed"] - before.get("ftp_data_resumed", 0), 2)
        self.assertEqual(after.get("ftp_data_refused_resumption", 0),
                         before.get("ftp_data_refused_resumption", 0))
        self.assertGreaterEqual(after["ftp_data_bytes_in"] - before.get("ftp_data_bytes_in", 0),
                                SIZE)
        self.assertGreaterEqual(after["ftp_data_bytes_out"] - before.get("ftp_data_bytes_out", 0),
                                SIZE)
        down.unlink()
        src.unlink()

    def test_ipv6_client(self):
        """A client on IPv6 (the backend on IPv4): curl's EPSV gets a data
        port on sluice's IPv6 data address; upload and download, sha256
        equal; PASV, whose 227 names only IPv4, is refused with 425."""
        src = scratch() / f"v6-up-{os.getpid()}.bin"
        src.write_bytes(os.urandom(1 << 20))
        down = scratch() / f"v6-down-{os.getpid()}.bin"
        before = self.counters()
        run([tool("curl"), "-sS", "--ssl-reqd", "-k", "-T", str(src),
             f"ftp://[::1]:{BASE + 6}/pub/v6.bin"], timeout=60)
        self.assertEqual(sha256(ROOT / "pub" / "v6.bin"), sha256(src))
        run([tool("curl"), "-sS", "--ssl-reqd", "-k", "-o", str(down),
             f"ftp://[::1]:{BASE + 6}/pub/v6.bin"], timeout=60)
        self.assertEqual(sha256(down), sha256(src))
        self.assertEqual(self.delta(before, "ftp_data_resumed"), 2)
        self.assertEqual(self.delta(before, "ftp_data_ok"), 2)
        f = Resuming(context=client_ctx(), timeout=30)
        f.connect("::1", BASE + 6)
        f.auth()
        f.login()
        f.prot_p()
        with self.assertRaises(ftplib.error_temp) as cm:
            f.sendcmd("PASV")
        self.assertTrue(str(cm.exception).startswith("425 Use EPSV"), cm.exception)
        self.assertEqual(self.delta(before, "ftp_pasv_v6_refused"), 1)
        out = io.BytesIO()
        f.retrbinary("RETR pub/v6.bin", out.write)     # EPSV: ftplib on IPv6
        self.assertEqual(hashlib.sha256(out.getvalue()).hexdigest(), sha256(src))
        f.quit()
        down.unlink()
        src.unlink()

    def test_lftp_upload_download(self):
        src = random_file("lftp-up")
        down = scratch() / f"lftp-down-{os.getpid()}.bin"
        before = self.counters()
        run([tool("lftp"), "-c",
             "set ssl:verify-certificate false; set ftp:ssl-force true; "
             "set ftp:ssl-protect-data true; set net:max-retries 1; "
             f"open -u anonymous, -p {BASE + 1} 127.0.0.1; cd pub; "
             f"put {src} -o lftp.bin; get lftp.bin -o {down}"], timeout=120)
        self.assertEqual(sha256(ROOT / "pub" / "lftp.bin"), sha256(src))
        self.assertEqual(sha256(down), sha256(src))
        self.assertGreaterEqual(self.delta(before, "ftp_data_resumed"), 2)
        down.unlink()
        src.unlink()

    def test_implicit_ftps(self):
        src = random_file("ftps")
        shutil.copy(src, ROOT / "pub" / "implicit.bin")
        down = scratch() / f"ftps-down-{os.getpid()}.bin"
        run([tool("curl"), "-sS", "-k", "-o", str(down),
             f"ftps://127.0.0.1:{BASE + 2}/pub/implicit.bin"], timeout=120)
        self.assertEqual(sha256(down), sha256(src))
        down.unlink()
        src.unlink()

    def test_ftplib_without_resumption_refused(self):
        (ROOT / "pub" / "small.txt").write_bytes(b"hello\r\n" * 100)
        before = self.counters()
        mark = len(SL.log_text())
        f = login(cls=ftplib.FTP_TLS)
        got = io.BytesIO()
        try:
            f.retrbinary("RETR pub/small.txt", got.write)
            self.fail("a refused data connection's transfer completed")
        except ftplib.error_temp as e:
            reply = str(e)
        except (ssl.SSLError, OSError, EOFError):
            # the data connection's end raised first: the reply is still due
            with self.assertRaises(ftplib.error_temp) as cm:
                f.voidresp()
            reply = str(cm.exception)
        # Never a 226 for a file the client did not get: the server's own
        # 426, or its 226 made 426 by sluice (ftp_xfer_aborted) when the
        # server had written the file before sluice refused the client.
        self.assertTrue(reply.startswith("426 "), reply)
        self.assertEqual(got.getvalue(), b"")
        if reply.startswith("426 Connection closed; transfer aborted"):   # sluice's words
            self.assertEqual(self.delta(before, "ftp_xfer_aborted"), 1)
        f.close()
        wait_until(lambda: "not a resumption of the control connection" in SL.log_text()[mark:],
                   10, "the refusal's log line")
        self.assertEqual(self.delta(before, "ftp_data_refused_resumption"), 1)
        self.assertEqual(self.delta(before, "ftp_data_not_resumed"), 1)
        # The same client resuming the control session gets the file.
        f = login()
        out = io.BytesIO()
        f.retrbinary("RETR pub/small.txt", out.write)
        f.quit()
        self.assertEqual(out.getvalue(), b"hello\r\n" * 100)
        self.assertEqual(self.delta(before, "ftp_data_resumed"), 1)

    def test_other_control_session_refused(self):
        """A data connection resuming a TLS session, but another control
        connection's (TLS 1.3 tickets and TLS 1.2 tickets): refused."""
        (ROOT / "pub" / "other.txt").write_bytes(b"other\n")
        for tls12 in (False, True):
            before = self.counters()
            mark = len(SL.log_text())
            ctx = client_ctx(tls12=tls12)
            a = login(ctx=ctx)
            a.retrbinary("RETR pub/other.txt", io.BytesIO().write)  # a's session resumable
            b = login(ctx=ctx)
            b.sendcmd("TYPE I")
            host, port = b.makepasv()
            raw = socket.create_connection((host, port), timeout=10)
            b.putcmd("RETR pub/other.txt")
            tls = b.context.wrap_socket(raw, server_hostname="127.0.0.1", session=a.sock.session)
            self.assertTrue(tls.session_reused, "the client did resume a's session")
            with self.assertRaises((ftplib.Error, OSError, EOFError)):
                tls.recv(100) or b.voidresp()
                b.voidresp()
            tls.close()
            wait_until(lambda: "resumed a TLS session not of this control connection"
                       in SL.log_text()[mark:], 10, "the refusal's log line")
            self.assertEqual(self.delta(before, "ftp_data_refused_resumption"), 1, tls12)
            a.quit()
            b.close()

    def test_tls12_session_id_resumption(self):
        """TLS 1.2 without tickets: the data connection resumes the control
        session from the session-ID cache; accepted."""
        (ROOT / "pub" / "sid.txt").write_bytes(b"sid\n")
        ctx = client_ctx(tls12=True)
        ctx.options |= ssl.OP_NO_TICKET
        before = self.counters()
        f = login(ctx=ctx)
        out = io.BytesIO()
        f.retrbinary("RETR pub/sid.txt", out.write)
        f.quit()
        self.assertEqual(out.getvalue(), b"sid\n")
        self.assertEqual(self.delta(before, "ftp_data_resumed"), 1)

    def test_bounce_refused(self):
        """A 227 naming a host other than the backend server's: 425, and
        sluice connects nowhere (RFC 2577)."""
        before = self.counters()
        f = login(port=BASE + 4)
        with self.assertRaises(ftplib.error_temp) as e:
            f.sendcmd("PASV")
        self.assertTrue(str(e.exception).startswith("425"), e.exception)
        self.assertTrue(f.sendcmd("NOOP").startswith("200"))  # in step still
        f.quit()
        self.assertEqual(self.delta(before, "ftp_data_bounce"), 1)
        self.assertEqual(self.delta(before, "ftp_data_listen"), 0)
        wait_until(lambda: "event=ftp-bounce" in SL.log_text(), 10, "the bounce logged")

    def test_epsv_and_pasv(self):
        (ROOT / "pub" / "e.txt").write_bytes(b"epsv\n")
        f = login()
        f.sendcmd("TYPE I")
        resp = f.sendcmd("EPSV")
        self.assertRegex(resp, r"^229 .*\(\|\|\|(\d+)\|\)")
        port = int(resp.split("|||")[1].split("|")[0])
        self.assertTrue(BASE - 100 <= port <= BASE - 51, resp)
        resp = f.sendcmd("PASV")
        self.assertRegex(resp, r"^227 .*\(127,0,0,1,\d+,\d+\)")
        h = resp.split("(")[1].split(")")[0].split(",")
        self.assertTrue(BASE - 100 <= int(h[4]) * 256 + int(h[5]) <= BASE - 51, resp)
        f.af = socket.AF_INET
        f.set_pasv(True)
        out = io.BytesIO()
        f.retrbinary("RETR pub/e.txt", out.write)
        self.assertEqual(out.getvalue(), b"epsv\n")
        f.quit()

    def test_no_ems_counted(self):
        (ROOT / "pub" / "ems.txt").write_bytes(b"ems\n")
        before = self.counters()
        mark = len(SL.log_text())
        f = login(ctx=client_ctx(tls12=True, ems=False))
        self.assertEqual(f.sock.version(), "TLSv1.2")
        out = io.BytesIO()
        f.retrbinary("RETR pub/ems.txt", out.write)
        f.quit()
        self.assertEqual(out.getvalue(), b"ems\n")
        # The client really sent no EMS: sluice's hello parser saw it.
        wait_until(lambda: re.search(r"proto=ftp tls=TLSv1\.2 .* quirks=no-ems ",
                                     SL.log_text()[mark:]), 10,
                   "the connection's log line with quirks=no-ems")
        self.assertGreaterEqual(self.delta(before, "ftp_no_ems"), 2)  # control and data
        # With EMS, nothing counted.
        before = self.counters()
        f = login(ctx=client_ctx(tls12=True))
        f.retrbinary("RETR pub/ems.txt", io.BytesIO().write)
        f.quit()
        self.assertEqual(self.delta(before, "ftp_no_ems"), 0)

    def test_no_ems_refused_with_require_ems(self):
        before = self.counters()
        f = ftplib.FTP_TLS(context=client_ctx(tls12=True, ems=False), timeout=30)
        with self.assertRaises((ftplib.Error, ssl.SSLError, OSError, EOFError)):
            f.connect("127.0.0.1", BASE + 3)
            f.auth()
            f.login()
        f.close()
        wait_until(lambda: "ftp.require_ems" in SL.log_text(), 10, "the EMS refusal logged")
        self.assertEqual(self.delta(before, "ftp_refused_ems"), 1)
        # TLS 1.3 (EMS by design) is fine there.
        f = login(port=BASE + 3)
        f.quit()

    def test_port_and_prot_c_refused(self):
        f = login()
        with self.assertRaises(ftplib.error_perm) as e:
            f.sendcmd("PORT 127,0,0,1,173,200")
        self.assertTrue(str(e.exception).startswith("502"), e.exception)
        with self.assertRaises(ftplib.error_perm) as e:
            f.sendcmd("EPRT |1|127.0.0.1|44500|")
        self.assertTrue(str(e.exception).startswith("502"), e.exception)
        with self.assertRaises(ftplib.error_perm) as e:
            f.sendcmd("PROT C")
        self.assertTrue(str(e.exception).startswith("534"), e.exception)
        self.assertTrue(f.sendcmd("PROT P").startswith("200"))
        self.assertTrue(f.sendcmd("NOOP").startswith("200"))  # the backend's, in order
        f.quit()

    def test_login_needs_tls(self):
        with socket.create_connection(("127.0.0.1", BASE + 1), timeout=10) as s:
            r = s.makefile("rb")
            self.assertTrue(r.readline().startswith(b"220 "))
            s.sendall(b"FEAT\r\n")
            feat = []
            while True:
                line = r.readline()
                feat.append(line)
                if line.startswith(b"211 "):
                    break
            self.assertIn(b" AUTH TLS\r\n", feat)
            self.assertIn(b" PBSZ\r\n", feat)
            self.assertIn(b" PROT\r\n", feat)
            s.sendall(b"USER anonymous\r\n")
            self.assertTrue(r.readline().startswith(b"530 "))
            s.sendall(b"QUIT\r\n")
            self.assertTrue(r.readline().startswith(b"221 "))

    def test_data_from_another_address_refused(self):
        before = self.counters()
        mark = len(SL.log_text())
        f = login()
        f.sendcmd("TYPE I")
        resp = f.sendcmd("EPSV")
        port = int(resp.split("|||")[1].split("|")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=10,
                                      source_address=("127.0.0.2", 0)) as d:
            d.settimeout(10)
            try:
                self.assertEqual(d.recv(100), b"")
            except ConnectionResetError:
                pass
        wait_until(lambda: "another address than the control connection" in
                   SL.log_text()[mark:], 10, "the refusal's log line")
        self.assertEqual(self.delta(before, "ftp_data_foreign"), 1)
        f.close()

    def test_data_handshake_deadline(self):
        """A data connection that trickles half a ClientHello in and stops:
        closed at timeouts.handshake from its accept (2 s on this listener),
        counted, logged; the transfer is not acknowledged, and the control
        connection goes on."""
        (ROOT / "pub" / "slow.txt").write_bytes(b"slow\n" * 1000)
        before = self.counters()
        mark = len(SL.log_text())
        f = login(port=BASE + 5)
        f.sendcmd("TYPE I")
        resp = f.sendcmd("EPSV")
        port = int(resp.split("|||")[1].split("|")[0])
        d = socket.create_connection(("127.0.0.1", port), timeout=10)
        f.putcmd("RETR pub/slow.txt")
        started = time.monotonic()
        # a TLS record header and a few bytes of a ClientHello, a byte a
        # half second: each one moves the session
        hello = bytes.fromhex("16030100c8010000c40303")
        closed = None
        for b in hello:
            try:
                d.sendall(bytes([b]))
            except OSError:
                closed = time.monotonic()
                break
            d.settimeout(0.5)
            try:
                if d.recv(100) == b"":
                    closed = time.monotonic()
                    break
            except socket.timeout:
                pass
            except OSError:
                closed = time.monotonic()
                break
        d.settimeout(10)
        if closed is None:
            try:
                self.assertEqual(d.recv(100), b"")
            except ConnectionResetError:
                pass
            closed = time.monotonic()
        d.close()
        self.assertGreaterEqual(closed - started, 1.5)
        self.assertLess(closed - started, 4.5)
        # the server's 150 first, then never a 2yz for a file not sent
        self.assertEqual(f.getresp()[:3], "150")
        with self.assertRaises((ftplib.error_temp, ftplib.error_perm)) as cm:
            f.voidresp()
        self.assertRegex(str(cm.exception), r"^42[56] ")
        wait_until(lambda: "TLS handshake not done in timeouts.handshake" in
                   SL.log_text()[mark:], 10, "the deadline's log line")
        self.assertEqual(self.delta(before, "ftp_data_timeout_setup"), 1)
        self.assertEqual(f.voidcmd("NOOP")[:3], "200")
        f.quit()
        self.assertRegex(SL.ctl("metrics")["text"],
                         r'\nsluice_ftp_data_connections_total\{listener="slow",[^}]*'
                         r'result="setup_timeout"\} 1\n')

    def test_abor_mid_download(self):
        """ABOR while a download relays (what curl and lftp send when a
        transfer is cut short): the server's 426 and its ABOR reply reach
        the client, no reply is held or made up, the control connection
        goes on."""
        big = ROOT / "pub" / "abor.bin"
        big.write_bytes(os.urandom(SIZE))
        before = self.counters()
        f = login()
        f.sendcmd("TYPE I")
        d = f.transfercmd("RETR pub/abor.bin")
        got = 0
        while got < 256 << 10:
            got += len(d.recv(65536))
        f.sock.sendall(b"ABOR\r\n")   # no urgent data under TLS
        d.close()
        replies = [f.getline() for _ in range(2)]
        codes = [r[:3] for r in replies]
        # RFC 959 4.1.3: the transfer's reply (426, or 226 when it had
        # ended), then ABOR's (226, or 225 when the transfer was over)
        self.assertIn(codes[0], ("426", "226"), replies)
        self.assertIn(codes[1], ("225", "226"), replies)
        self.assertEqual(f.voidcmd("NOOP")[:3], "200")
        f.quit()
        self.assertEqual(self.delta(before, "ftp_xfer_aborted"), 0)
        big.unlink()

    def test_control_reset_mid_upload(self):
        """The control connection is reset while an upload's data connection
        relays: the data connection is cut (reset on the backend's side,
        never a FIN that ends the upload as if complete), counted."""
        before = self.counters()
        f = login()
        f.sendcmd("TYPE I")
        d = f.transfercmd("STOR pub/cut.bin")
        d.sendall(os.urandom(1 << 20))
        wait_until(lambda: self.delta(before, "ftp_data_bytes_in") > 0, 10,
                   "the upload relaying")
        # the control connection reset, no QUIT: the session ends
        f.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        f.close()
        wait_until(lambda: self.delta(before, "ftp_data_cut") == 1, 10,
                   "the data connection counted as cut")
        d.settimeout(10)
        with self.assertRaises((OSError, ssl.SSLError, AssertionError)):
            while d.send(b"x" * 65536):
                pass
        d.close()
        self.assertEqual(self.delta(before, "ftp_data_ok"), 0)
        wait_until(lambda: re.search(r"FAIL UPLOAD: .*/pub/cut\.bin",
                                     VS.log.read_text()), 10, "vsftpd's FAIL UPLOAD line")
        self.assertNotRegex(VS.log.read_text(), r"OK UPLOAD: .*/pub/cut\.bin")
        text = SL.ctl("metrics")["text"]
        self.assertRegex(text, r'\nsluice_ftp_data_connections_total\{listener="ftp",[^}]*'
                         r'result="cut"\} [1-9]')
        self.assertRegex(text, r'\nsluice_ftp_data_received_bytes_total\{listener="ftp",'
                         r'[^}]*\} [1-9]')


if __name__ == "__main__":
    unittest.main()
