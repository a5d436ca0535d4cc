#!/usr/bin/python3
"""The fleet test's SMTP clients (test_fleet.py), run inside the client
namespace: deliveries over STARTTLS to the service address, one session
each, from several source addresses, N at a time; the body is sent in
parts over `slow` seconds, so that sessions are in flight when a box is
drained or killed. A session that fails is retried (a new connection,
which ECMP may send elsewhere) up to `retries` times, as an MTA would.

    fleet_client.py deliver JSON     JSON: {"vip", "tags", "sources",
                                     "concurrency", "slow", "retries",
                                     "sender", "domain"}
    fleet_client.py resume JSON      {"vip", "source", "tries"}

Prints one JSON line per delivery (tag, attempts: [{box, t0, t1, code,
error}]), or for resume the boxes and whether the second one resumed.
"""

import json
import random
import smtplib
import socket
import ssl
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


CTX = context()     # one context: a session resumes only on the context it came from


def message(job, tag):
    body = "".join(f"line {i} of the fleet message {tag}\r\n" for i in range(40))
    return (f"From: <{job['sender']}>\r\nTo: <{tag}@{job['domain']}>\r\n"
            f"Subject: fleet {tag}\r\nMessage-ID: <{tag}@fleet.test>\r\n\r\n{body}").encode()


def attempt(job, tag):
    a = {"box": None, "t0": time.time(), "code": None, "error": None}
    try:
        c = smtplib.SMTP(timeout=30)
        c._host = job["vip"]        # connect() below does not set it; starttls names it
        code, greeting = c.connect(job["vip"], 25,
                                   source_address=(random.choice(job["sources"]), 0))
        a["box"] = greeting.decode().split()[0]
        if code != 220:
            raise smtplib.SMTPResponseException(code, greeting)
        c.ehlo("client.fleet.test")
        c.starttls(context=CTX)
        c.ehlo("client.fleet.test")
        c.mail(job["sender"])
        code, msg = c.rcpt(f"{tag}@{job['domain']}")
        if code != 250:
            raise smtplib.SMTPResponseException(code, msg)
        code, msg = c.docmd("DATA")
        if code != 354:
            raise smtplib.SMTPResponseException(code, msg)
        data = message(job, tag)
        parts = 4
        for i in range(parts):
            c.send(data[i * len(data) // parts:(i + 1) * len(data) // parts])
            time.sleep(job["slow"] / parts)
        c.send(b".\r\n")
        code, msg = c.getreply()
        a["code"] = code
        if code == 250:
            try:
                c.quit()
            except (smtplib.SMTPException, OSError):
                pass
        else:
            a["error"] = msg.decode(errors="replace")
        c.close()
    except (smtplib.SMTPException, OSError) as e:
        a["error"] = repr(e)
    a["t1"] = time.time()
    return a


def deliver_one(job, tag):
    attempts = []
    for n in range(job["retries"] + 1):
        a = attempt(job, tag)
        attempts.append(a)
        if a["code"] == 250:
            break
        time.sleep(0.3)
    return {"tag": tag, "attempts": attempts}


def deliver(job):
    with ThreadPoolExecutor(job["concurrency"]) as ex:
        for r in ex.map(lambda t: deliver_one(job, t), job["tags"]):
            print(json.dumps(r), flush=True)


def starttls_session(vip, source, session=None):
    """One STARTTLS session by hand (smtplib takes no TLS session): the
    box's name, the session after the first reply over TLS (a TLS 1.3
    ticket comes after the handshake), and whether it was resumed."""
    s = socket.create_connection((vip, 25), timeout=10, source_address=(source, 0))
    f = s.makefile("rb")
    greeting = f.readline().decode()

    def reply(fh):
        while True:
            line = fh.readline().decode()
            if line[3:4] != "-":
                return line

    s.sendall(b"EHLO client.fleet.test\r\n")
    reply(f)
    s.sendall(b"STARTTLS\r\n")
    assert reply(f).startswith("220"), "STARTTLS refused"
    t = CTX.wrap_socket(s, session=session)
    tf = t.makefile("rb")
    t.sendall(b"EHLO client.fleet.test\r\n")
    reply(tf)
    t.sendall(b"QUIT\r\n")
    reply(tf)
    out = (greeting.split()[1], t.session, t.session_reused, t.version())
    t.close()
    return out


def resume(job):
    box_a, session, _, version = starttls_session(job["vip"], job["source"])
    for _ in range(job["tries"]):
        box_b, _, reused, _ = starttls_session(job["vip"], job["source"], session)
        if box_b != box_a:
            print(json.dumps({"first": box_a, "second": box_b, "reused": reused,
                              "version": version}))
            return
    print(json.dumps({"first": box_a, "second": None}))


if __name__ == "__main__":
    {"deliver": deliver, "resume": resume}[sys.argv[1]](json.loads(sys.argv[2]))
