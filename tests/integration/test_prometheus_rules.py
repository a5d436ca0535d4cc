"""What an operator puts next to sluice's metrics (issue 13): the alert
rules (docs/prometheus/alerts.yml) and the Grafana dashboard
(docs/grafana/sluice.json), checked with Debian's promtool.

- promtool check rules: the rules load (PromQL parses, templates compile).
- promtool test rules on docs/prometheus/alerts_test.yml: every alert
  fires on its synthetic series, with its labels and rendered annotations,
  and does not fire on the near misses.
- Every alert has `for:`, a severity, a summary, a description and a
  runbook that names a section of docs/operations.md.
- The dashboard: the template variables, the rows; every PromQL expression
  parses (promtool check rules on a generated rules file with each
  expression as a recording rule, the dashboard's variables replaced).
- The contract: every sluice_* name used in an expression of the
  dashboard or of the rules is a family of docs/metrics.md's tables (with
  the histogram's _bucket/_sum/_count), so that the three cannot drift.

No sluice runs here: promtool and the files are all it needs.
"""

import json
import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

import yaml

from harness import REPO

RULES = REPO / "docs" / "prometheus" / "alerts.yml"
RULES_TEST = REPO / "docs" / "prometheus" / "alerts_test.yml"
DASHBOARD = REPO / "docs" / "grafana" / "sluice.json"
METRICS_MD = REPO / "docs" / "metrics.md"
OPERATIONS_MD = REPO / "docs" / "operations.md"

# The alerts the brief of issue 13 asks for, each by what it is about.
ALERTS = {"SluiceCertificateExpiringSoon", "SluiceCertificateExpired",
          "SluiceHandshakeFailureRatioHigh", "SluiceBackendServerDown",
          "SluiceBackendAllServersDown", "SluiceReloadFailed", "SluiceLimitsRefusing",
          "SluiceCoreInStress", "SluiceDataplaneDown", "SluiceScrapeFailing",
          "SluiceWorkerQueueDeep"}

# The dashboard's rows (their titles, in order).
ROWS = ["Overview", "TLS", "Limits", "Backends", "Cores", "Certificates", "Native stack"]


def promtool():
    p = shutil.which("promtool")
    assert p, "promtool not found: Debian's prometheus package (tests/packages.txt)"
    return p


def run_promtool(*args, timeout=60):
    p = subprocess.run([promtool(), *map(str, args)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace")


# ------------------------------------------------------------- the contract ---

def def_names(path, macro):
    """The names of an X-macro list (C(name, help) / NC(name, help))."""
    return set(re.findall(rf"^{macro}\((\w+),", (REPO / path).read_text(), re.M))


# The templated families of docs/metrics.md and the lists they stand for.
TEMPLATED = {"sluice_<counter>_total": ("dataplane/counters.def", "C", "sluice_{}_total"),
             "sluice_net_<counter>_total": ("dataplane/net/counters.def", "NC",
                                            "sluice_net_{}_total")}


def metric_families():
    """The names of docs/metrics.md's tables: {name: type}. A templated
    name (sluice_<counter>_total) stands for one family per name of its
    .def list."""
    families = {}
    for line in METRICS_MD.read_text().splitlines():
        m = re.match(r"\|\s*`(sluice_[^`{]+)(?:\{[^`]*\})?`\s*\|\s*(\w+)\s*\|", line)
        if not m:
            continue
        name, typ = m.groups()
        if "<" in name:
            path, macro, fmt = TEMPLATED[name]
            for c in def_names(path, macro):
                families.setdefault(fmt.format(c), typ)
        else:
            families[name] = typ
    return families


def known(name, families):
    """Whether a series name is a family of the contract, or a histogram's
    _bucket/_sum/_count."""
    if name in families:
        return True
    base, _, suffix = name.rpartition("_")
    return suffix in ("bucket", "sum", "count") and families.get(base) == "histogram"


def names_in(expr):
    """The metric names an expression selects: sluice_* identifiers (label
    names and values never start with sluice_ in ours), and up."""
    # Drop quoted strings first: label values ("sluice", regexes).
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return set(re.findall(r"\b(sluice_[a-zA-Z0-9_]+|up)\b", bare))


# ------------------------------------------------------------ the dashboard ---

def dashboard():
    return json.loads(DASHBOARD.read_text())


def panels(dash):
    """Every panel, those inside collapsed rows too."""
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", [])


def dashboard_exprs(dash):
    """(where, PromQL) of every target, query variable and annotation."""
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            yield f"annotation {a['name']!r}", a["expr"]
    for p in panels(dash):
        for t in p.get("targets", []):
            if t.get("expr"):
                yield f"panel {p.get('title')!r} ref {t.get('refId')}", t["expr"]
    for v in dash["templating"]["list"]:
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            yield f"variable {v['name']}", q


def promql_of_variable_query(q):
    """label_values(metric, label) is Grafana's, not PromQL: the metric
    selector inside is what Prometheus is asked for."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", q)
    return m.group(1) if m else q


def substitute(expr):
    """Grafana's variables replaced by what they stand for in a query."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    expr = expr.replace("$__range", "1h")
    return re.sub(r"\$\{?(\w+)(?::\w+)?\}?", "x", expr)


def rule_exprs():
    doc = yaml.safe_load(RULES.read_text())
    for g in doc["groups"]:
        for r in g["rules"]:
            yield r.get("alert") or r.get("record"), r["expr"]


class AlertRules(unittest.TestCase):

    def test_promtool_check_rules(self):
        rc, out = run_promtool("check", "rules", RULES)
        self.assertEqual(rc, 0, out)
        self.assertIn(f"SUCCESS: {len(ALERTS)} rules found", out)

    def test_promtool_test_rules(self):
        """Each alert fires on its series and not on the near misses."""
        rc, out = run_promtool("test", "rules", RULES_TEST)
        self.assertEqual(rc, 0, out)
        self.assertIn("SUCCESS", out)

    def test_every_alert_is_tested_firing_and_quiet(self):
        tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
        fired, quiet = set(), set()
        for t in tests:
            for a in t.get("alert_rule_test", []):
                (fired if a.get("exp_alerts") else quiet).add(a["alertname"])
        self.assertEqual(fired, ALERTS, "alerts the test file makes fire")
        self.assertEqual(quiet, ALERTS, "alerts the test file checks do not fire")

    def test_each_alert_says_what_to_do(self):
        doc = yaml.safe_load(RULES.read_text())
        ops = OPERATIONS_MD.read_text()
        anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
                   for h in re.findall(r"^#+ (.+)$", ops, re.M)}
        seen = set()
        for r in doc["groups"][0]["rules"]:
            name = r["alert"]
            seen.add(name)
            with self.subTest(alert=name):
                self.assertRegex(r.get("for", ""), r"^\d+[smh]$", "for:")
                self.assertIn(r["labels"].get("severity"), ("warning", "critical"))
                ann = r["annotations"]
                self.assertTrue(ann.get("summary"), "summary")
                self.assertGreater(len(ann.get("description", "")), 80, "description")
                path, _, anchor = ann.get("runbook", "").partition("#")
                self.assertEqual(path, "docs/operations.md")
                self.assertIn(anchor, anchors, "runbook: a section of docs/operations.md")
        self.assertEqual(seen, ALERTS)


class Dashboard(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dash = dashboard()

    def test_variables_and_rows(self):
        d = self.dash
        self.assertGreaterEqual(d["schemaVersion"], 36)
        self.assertTrue(d.get("uid"))
        var = {v["name"]: v for v in d["templating"]["list"]}
        self.assertEqual(var["datasource"]["type"], "datasource")
        self.assertEqual(var["datasource"]["query"], "prometheus")
        for name, label in (("instance", "instance"), ("listener", "listener")):
            with self.subTest(variable=name):
                v = var[name]
                self.assertEqual(v["type"], "query")
                q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
                self.assertRegex(q, rf"^label_values\(sluice_\w+.*,\s*{label}\)$")
                self.assertEqual(v["datasource"]["uid"], "${datasource}")
        rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
        self.assertEqual(rows, ROWS)
        for p in panels(d):
            if p["type"] != "row":
                with self.subTest(panel=p["title"]):
                    self.assertEqual(p["datasource"]["uid"], "${datasource}")
                    self.assertTrue(p.get("targets"), "a panel without a query")
        ids = [p["id"] for p in panels(d)]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are unique")

    def test_every_expression_parses(self):
        """promtool check rules on a rules file with each of the dashboard's
        expressions as a recording rule."""
        rules = [{"record": f"dashboard:expr_{i}", "expr": substitute(
                    promql_of_variable_query(e))}
                 for i, (_, e) in enumerate(dashboard_exprs(self.dash))]
        self.assertGreater(len(rules), 30)
        with tempfile.NamedTemporaryFile("w", suffix=".yml", prefix="sluice-dash-") as f:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
            f.flush()
            rc, out = run_promtool("check", "rules", f.name)
        where = [w for w, _ in dashboard_exprs(self.dash)]
        bad = [where[int(i)] for i in re.findall(r'"dashboard:expr_(\d+)"', out)]
        self.assertEqual(rc, 0, f"{out}\nin: {bad}")


class Contract(unittest.TestCase):
    """docs/metrics.md, the dashboard and the rules name the same families."""

    def test_metrics_md_parses(self):
        fam = metric_families()
        # A few of each table, so that a change of the tables' format that
        # loses them fails here rather than passing every name.
        for name, typ in (("sluice_sessions", "gauge"), ("sluice_sessions_total", "counter"),
                          ("sluice_tls_handshake_duration_seconds", "histogram"),
                          ("sluice_backend_up", "gauge"), ("sluice_core_stress", "gauge"),
                          ("sluice_config_reloads_total", "counter"),
                          ("sluice_dataplane_up", "gauge"),
                          ("sluice_cert_not_after_timestamp_seconds", "gauge")):
            self.assertEqual(fam.get(name), typ, name)
        self.assertGreater(len(fam), 40)
        self.assertTrue(known("sluice_net_tcp_syncookie_tx_total", fam))
        self.assertTrue(known("sluice_stress_entered_total", fam))
        self.assertFalse(known("sluice_net_tcp_syn_cookies_total", fam))
        self.assertTrue(known("sluice_tls_handshake_duration_seconds_bucket", fam))
        self.assertFalse(known("sluice_handshakes_failed", fam))
        self.assertFalse(known("sluice_session", fam))

    def check_names(self, exprs):
        fam = metric_families()
        for where, expr in exprs:
            for name in names_in(expr):
                if name == "up":
                    continue
                with self.subTest(where=where, name=name):
                    self.assertTrue(known(name, fam),
                                    f"{name} ({where}) is not a family of docs/metrics.md")

    def test_dashboard_names_are_families(self):
        exprs = list(dashboard_exprs(dashboard()))
        self.check_names(exprs)
        used = set().union(*(names_in(e) for _, e in exprs))
        # The dashboard shows the sections the issue lists.
        for name in ("sluice_sessions", "sluice_tls_versions_total", "sluice_tls_ciphers_total",
                     "sluice_tls_resumptions_total", "sluice_quirks_total",
                     "sluice_tls_handshake_failures_total",
                     "sluice_tls_handshake_duration_seconds_bucket",
                     "sluice_sessions_refused_total", "sluice_core_stress", "sluice_backend_up",
                     "sluice_backend_connect_failures_total", "sluice_backend_lost_total",
                     "sluice_backend_probe_age_seconds", "sluice_core_busy_seconds_total",
                     "sluice_core_sessions", "sluice_worker_queue_depth",
                     "sluice_cert_not_after_timestamp_seconds",
                     "sluice_dpdk_port_xstat_total"):
            self.assertIn(name, used, f"the dashboard shows {name}")
        self.assertTrue(any(n.startswith("sluice_net_") for n in used), "native stack")

    def test_rule_names_are_families(self):
        self.check_names(list(rule_exprs()))

    def test_names_in_sees_through_labels(self):
        """The checker's own parsing: names inside label values are not
        taken for metrics, names with by() and offset are."""
        self.assertEqual(names_in('sum by (listener) (rate(sluice_sessions_total'
                                  '{listener=~"sluice_x"}[5m] offset 1h)) / up{job="sluice"}'),
                         {"sluice_sessions_total", "up"})


if __name__ == "__main__":
    unittest.main()
