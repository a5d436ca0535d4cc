#!/usr/bin/python3
"""The Debian package, end to end (docs/packaging.md). Output: TAP.

    tests/package/check_package.py [--keep]

  1. build: a copy of this checkout's files (git ls-files: what a clean
     clone holds, no build folders) in a scratch folder, then
     `dpkg-buildpackage -us -uc -b` there as root (DEB_BUILD_OPTIONS=nocheck:
     the unit tests run in tests/run's own sections);
  2. the .deb recommends the DPDK driver plugins (shlibs cannot see them);
     lintian on the .changes: no error (the warnings are printed);
  3. a fresh `debootstrap bookworm` in a folder under /tmp (minbase plus
     systemd, as a Debian 12 machine has), its .debs cached in
     $SLUICE_PKG_CACHE (default /var/cache/sluice-ci) between runs, and
     `apt-get install ./sluice_*.deb` in it (apt fetches the dependencies
     from deb.debian.org; they are cached too);
  4. in the chroot: `sluice --check -c /etc/sluice/sluice.yaml`; `sluice-setup
     check` (the kernel stack: nothing to set up); the users
     and groups; the folders' owners and modes; the generated certificate;
     the conffile; the units enabled; `systemd-analyze verify` on the units;
     `systemd-analyze security --offline=yes`: the exposure figures;
  5. the conffile edited, the package installed again over itself (no
     prompt: standard input is closed): the edit is kept, and so are the
     certificate and the user's uid; then purged: the state folder goes.

Mounts (proc, dev, the apt cache) are undone and the folders removed
whatever happens (--keep leaves the chroot for a look, mounts undone).
"""

import argparse
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
CACHE = Path(os.environ.get("SLUICE_PKG_CACHE", "/var/cache/sluice-ci"))
ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def case(self, name, ok, why=""):
        self.n += 1
        print(f"{'ok' if ok else 'not ok'} {self.n} - {name}", flush=True)
        if not ok:
            self.failed += 1
            for line in str(why).strip().splitlines()[-25:]:
                print(f"# {line}", flush=True)
        return ok

    def note(self, text):
        for line in str(text).strip().splitlines():
            print(f"# {line}", flush=True)


def sh(cmd, timeout=600, **kw):
    """Run cmd (standard input closed, or input=bytes); (returncode,
    stdout+stderr). tests/image/check_image.py uses it too."""
    t0 = time.monotonic()
    if "input" not in kw:
        kw["stdin"] = subprocess.DEVNULL
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, env=kw.pop("env", ENV),
                           **kw)
        out, rc = p.stdout.decode(errors="replace"), p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.output or b"").decode(errors="replace") + f"\n(timed out after {timeout} s)", -1
    print(f"# + {' '.join(map(str, cmd))[:160]}  [{time.monotonic() - t0:.0f} s, rc {rc}]",
          flush=True)
    return rc, out


class Chroot:
    """A debootstrap of bookworm under /tmp, with /proc, /dev and the apt
    cache mounted while it is used."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="sluice-pkgtest-", dir="/tmp"))
        self.mounts = []

    def bootstrap(self):
        cache = CACHE / "debootstrap"
        cache.mkdir(parents=True, exist_ok=True)
        return sh(["debootstrap", "--variant=minbase", "--include=systemd",
                   f"--cache-dir={cache}", SUITE, self.dir, MIRROR], timeout=900)

    def mount(self):
        for src, dst, opts in (("proc", "proc", ["-t", "proc"]),
                               ("/dev", "dev", ["--bind"]),
                               (str(CACHE / "apt"), "var/cache/apt/archives", ["--bind"])):
            if src.startswith("/"):
                Path(src).mkdir(parents=True, exist_ok=True)
            target = self.dir / dst
            target.mkdir(parents=True, exist_ok=True)
            rc, out = sh(["mount", *opts, src, target])
            if rc != 0:
                raise RuntimeError(out)
            self.mounts.append(target)
        shutil.copy("/etc/resolv.conf", self.dir / "etc" / "resolv.conf")
        # Nothing the packages install is started inside (systemd is not
        # running there anyway; this also covers sysv scripts).
        rcd = self.dir / "usr" / "sbin" / "policy-rc.d"
        rcd.write_text("#!/bin/sh\nexit 101\n")
        rcd.chmod(0o755)

    def run(self, *cmd, timeout=300):
        return sh(["chroot", self.dir, *cmd], timeout=timeout)

    def path(self, p):
        return self.dir / p.lstrip("/")

    def cleanup(self, keep=False):
        for m in reversed(self.mounts):
            if subprocess.run(["umount", m]).returncode != 0:
                subprocess.run(["umount", "-l", m])
        self.mounts = []
        if keep:
            print(f"# chroot kept in {self.dir}")
            return
        # Never follow into what might still be mounted.
        if any(str(l.split()[1]).startswith(str(self.dir))
               for l in Path("/proc/self/mounts").read_text().splitlines()):
            print(f"# {self.dir} still has mounts: left in place")
            return
        shutil.rmtree(self.dir, ignore_errors=True)


def clear_stale():
    """Chroots an earlier run left (killed before its cleanup), older than
    two hours: their mounts undone, the folders removed."""
    mounts = [l.split()[1] for l in Path("/proc/self/mounts").read_text().splitlines()]
    for d in Path("/tmp").glob("sluice-pkg*-*"):
        try:
            if time.time() - d.stat().st_mtime < 7200:
                continue
        except OSError:
            continue
        for m in sorted((m for m in mounts if m.startswith(f"{d}/")), reverse=True):
            subprocess.run(["umount", "-l", m])
        # Never remove through a mount (the bind of /dev above all).
        if any(l.split()[1].startswith(f"{d}/")
               for l in Path("/proc/self/mounts").read_text().splitlines()):
            print(f"# {d}: left by an earlier run, still mounted: left in place")
            continue
        print(f"# removing {d}, left by an earlier run")
        shutil.rmtree(d, ignore_errors=True)


def build(t, work):
    src = work / "sluice"
    files = subprocess.run(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], stdout=subprocess.PIPE, check=True).stdout
    for f in files.decode().split("\0"):
        if not f or f.startswith("build") or not (REPO / f).is_file():
            continue
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, src / f)
    rc, out = sh(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, timeout=900,
                 env={**ENV, "DEB_BUILD_OPTIONS": "nocheck parallel=2"})
    debs = sorted(work.glob("sluice_*_*.deb"))
    if not t.case("dpkg-buildpackage -us -uc -b builds sluice_*.deb", rc == 0 and debs,
                  out[-4000:]):
        return None, None
    # DPDK's drivers are plugins the EAL loads: shlibs cannot see them
    rc, rec = sh(["dpkg-deb", "-f", debs[0], "Recommends"])
    t.case("Recommends: the DPDK drivers every native port needs (ring mempool, PCI and "
           "vdev buses, net_tap), with the ABI built against",
           all(re.search(rf"\b{p}\d+\b", rec) for p in
               ("librte-mempool-ring", "librte-bus-pci", "librte-bus-vdev", "librte-net-tap")),
           rec)
    warnings = [l for l in out.splitlines() if "warning:" in l]
    if warnings:
        t.note("compiler warnings under dpkg-buildflags:\n" + "\n".join(warnings[:20]))
    return debs[0], sorted(work.glob("sluice_*.changes"))[0]


def lint(t, changes):
    rc, out = sh(["lintian", "--allow-root", "--display-info", "--fail-on", "error", changes],
                 timeout=300)
    tags = [l for l in out.splitlines() if re.match(r"^[EWIPX]: ", l)]
    errors = [l for l in tags if l.startswith("E: ")]
    t.case("lintian: no error", rc == 0 and not errors, "\n".join(errors) or out[-2000:])
    t.note("lintian:\n" + ("\n".join(tags) or "nothing"))


def mode_of(p):
    st = os.lstat(p)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def installed(t, ch, deb):
    """Checks on a chroot where deb is installed."""
    rc, out = ch.run("/usr/sbin/sluice", "--check", "-c", "/etc/sluice/sluice.yaml")
    t.case("sluice --check -c /etc/sluice/sluice.yaml in the chroot", rc == 0
           and "ok: 7 listeners" in out, out)
    rc, out = ch.run("/usr/sbin/sluice-setup", "check")
    t.case("sluice-setup check in the chroot: the packaged configuration is the kernel "
           "stack, nothing to set up (exit 0)",
           rc == 0 and "the kernel stack (no native: section)" in out, out)

    def ent(db, name):
        rc, out = ch.run("getent", db, name)
        return out.strip().split(":") if rc == 0 else None

    pw, grp, adm = ent("passwd", "sluice"), ent("group", "sluice"), ent("group", "sluice-admin")
    t.case("user sluice: a system user, home /var/lib/sluice, no login shell",
           pw is not None and int(pw[2]) < 1000 and pw[5] == "/var/lib/sluice"
           and pw[6] == "/usr/sbin/nologin", pw)
    t.case("groups sluice (sluice's own) and sluice-admin (sluicectl's users)",
           grp is not None and adm is not None and pw is not None and pw[3] == grp[2]
           and int(adm[2]) < 1000, (grp, adm))
    if not (pw and grp and adm):
        return
    uid, gid, agid = int(pw[2]), int(grp[2]), int(adm[2])
    want = {
        "/var/lib/sluice": (0o750, uid, gid),
        "/run/sluice": (0o750, 0, agid),
        "/etc/sluice/sluice.key": (0o600, 0, 0),
        "/etc/sluice/sluice.pem": (0o644, 0, 0),
        "/etc/sluice/sluice.yaml": (0o644, 0, 0),
    }
    for p, (m, u, g) in want.items():
        got = mode_of(ch.path(p)) if ch.path(p).exists() else None
        t.case(f"{p}: mode {m:04o}, owner {u}:{g}", got == (m, u, g),
               f"got {'missing' if got is None else f'mode {got[0]:04o}, owner {got[1]}:{got[2]}'}")
    rc, out = ch.run("dpkg-query", "-W", "-f", "${Conffiles}", "sluice")
    t.case("/etc/sluice/sluice.yaml is a conffile", "/etc/sluice/sluice.yaml " in out, out)
    wants = ch.path("/etc/systemd/system/multi-user.target.wants")
    t.case("sluice.service and sluice-control.service enabled",
           all((wants / u).is_symlink() for u in ("sluice.service", "sluice-control.service")),
           sorted(p.name for p in wants.iterdir()) if wants.exists() else "no wants folder")
    for page in ("man8/sluice.8.gz", "man8/sluicectl.8.gz", "man8/sluice-control.8.gz",
                 "man8/sluice-setup.8.gz", "man5/sluice.yaml.5.gz"):
        t.case(f"/usr/share/man/{page} installed", ch.path(f"/usr/share/man/{page}").exists())
    t.case("bash completion for sluicectl installed",
           ch.path("/usr/share/bash-completion/completions/sluicectl").exists())
    rc, out = ch.run("systemd-analyze", "verify", "--man=no",
                     "/lib/systemd/system/sluice.service",
                     "/lib/systemd/system/sluice-control.service")
    t.case("systemd-analyze verify: the units", rc == 0 and not out.strip(), out)
    for unit in ("sluice.service", "sluice-control.service"):
        rc, out = ch.run("systemd-analyze", "security", "--offline=yes", "--no-pager",
                         f"/lib/systemd/system/{unit}")
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", out)
        t.case(f"systemd-analyze security --offline=yes {unit}: exposure below 4.0 (OK)",
               rc == 0 and m and float(m.group(1)) < 4.0, out[-1500:])
        if m:
            t.note(f"exposure {unit}: {m.group(1)} {m.group(2)}")
    # The native stack's drop-in, as docs/packaging.md says to put it.
    dropin = ch.path("/etc/systemd/system/sluice.service.d")
    dropin.mkdir(parents=True)
    shutil.copy(ch.path("/usr/share/doc/sluice/examples/sluice.service.d/native.conf"), dropin)
    rc, out = ch.run("systemd-analyze", "verify", "--man=no", "sluice.service")
    t.case("systemd-analyze verify: sluice.service with the native drop-in",
           rc == 0 and not out.strip(), out)
    rc, out = ch.run("systemd-analyze", "security", "--offline=yes", "--no-pager",
                     "sluice.service")
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", out)
    if m:
        t.note(f"exposure sluice.service with native.conf: {m.group(1)} {m.group(2)}")
    shutil.rmtree(dropin)


def upgrade(t, ch, deb):
    """The conffile edited, the same package installed over itself."""
    conf = ch.path("/etc/sluice/sluice.yaml")
    pem = ch.path("/etc/sluice/sluice.pem").read_bytes()
    uid = os.stat(ch.path("/var/lib/sluice")).st_uid
    edited = conf.read_text().replace("cores: 1\n", "cores: 2   # edited by the test\n")
    if not t.case("the shipped conffile has the line the test edits", edited != conf.read_text()):
        return
    conf.write_text(edited)
    rc, out = ch.run("dpkg", "-i", f"/tmp/{deb.name}")
    t.case("the package installs over itself without a prompt", rc == 0, out)
    t.case("the edited conffile is kept", conf.read_text() == edited, conf.read_text()[:800])
    t.case("the certificate and the user are kept",
           ch.path("/etc/sluice/sluice.pem").read_bytes() == pem
           and os.stat(ch.path("/var/lib/sluice")).st_uid == uid)
    rc, out = ch.run("/usr/sbin/sluice", "--check", "-c", "/etc/sluice/sluice.yaml")
    t.case("sluice --check on the edited file", rc == 0, out)
    rc, out = ch.run("dpkg", "--purge", "sluice")
    t.case("purge removes the configuration and /var/lib/sluice",
           rc == 0 and not conf.exists() and not ch.path("/var/lib/sluice").exists(), out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", action="store_true", help="leave the chroot in /tmp")
    ap.add_argument("--keep-deb", metavar="DIR",
                    help="copy the built .deb here (the image test installs it)")
    args = ap.parse_args()
    t = Tap()
    t0 = time.monotonic()
    if os.geteuid() != 0:
        print("1..1\nnot ok 1 - the package test runs as root (debootstrap, chroot, mount)")
        return 1
    clear_stale()
    work = Path(tempfile.mkdtemp(prefix="sluice-pkgbuild-", dir="/tmp"))
    ch = None
    try:
        deb, changes = build(t, work)
        if not deb:
            return 1
        if args.keep_deb:
            Path(args.keep_deb).mkdir(parents=True, exist_ok=True)
            shutil.copy(deb, Path(args.keep_deb) / deb.name)
        lint(t, changes)
        ch = Chroot()
        rc, out = ch.bootstrap()
        if not t.case(f"debootstrap {SUITE} in {ch.dir}", rc == 0, out[-3000:]):
            return 1
        ch.mount()
        shutil.copy(deb, ch.path(f"/tmp/{deb.name}"))
        rc, out = ch.run("apt-get", "update", "-q")
        if rc == 0:
            rc, out = ch.run("apt-get", "install", "-y", "-q", "--no-install-recommends",
                             f"/tmp/{deb.name}", timeout=600)
        if not t.case("apt-get install ./sluice_*.deb in the chroot", rc == 0, out[-3000:]):
            return 1
        installed(t, ch, deb)
        upgrade(t, ch, deb)
    except Exception as e:          # a step that could not even run
        t.case("the package test ran to its end", False, repr(e))
    finally:
        if ch:
            ch.cleanup(args.keep)
        shutil.rmtree(work, ignore_errors=True)
        print(f"1..{t.n}")
        t.note(f"package test: {time.monotonic() - t0:.0f} s")
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
