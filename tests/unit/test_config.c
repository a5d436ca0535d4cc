/*
 * Unit tests for the configuration loader (firmware-config/config.c).
 *
 * Read as scenarios: the shipped examples load with the values an operator
 * expects, and a table of broken documents, each with the exact
 * "FILE:LINE: KEY" its message must start with.
 *
 * Usage: test_config [EXAMPLES_DIR]  (or SLUICE_EXAMPLES in the environment)
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static const char *examples_dir = "firmware-config/examples";

/* ---- the shipped files ---------------------------------------------------- */

static struct cfg *load_example(const char *file)
{
	char path[512], err[512];
	struct cfg *c = NULL;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", examples_dir, file);
	rc = cfg_load_file(path, &c, err, sizeof(err));
	if (rc)
		print_error("%s\n", err);
	assert_int_equal(rc, 0);
	assert_non_null(c);
	assert_string_equal(c->path, path);
	return c;
}

static void assert_inet(const struct sockaddr_storage *ss, socklen_t len,
			const char *ip, unsigned port)
{
	const struct sockaddr_in *sin = (const void *)ss;
	char buf[INET_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
	assert_string_equal(buf, ip);
	assert_int_equal(ntohs(sin->sin_port), port);
}

static void assert_timeouts(const struct cfg_timeouts *t, unsigned p, unsigned h, unsigned i)
{
	assert_int_equal(t->plaintext, p);
	assert_int_equal(t->handshake, h);
	assert_int_equal(t->idle, i);
}

/* mail-front.yaml: every key written out, three listeners on one backend. */
static void test_mail_front(void **state)
{
	(void)state;
	static const struct {
		const char *name; unsigned port; enum cfg_proto proto; enum cfg_tls tls;
		unsigned line; unsigned backend;
	} want[] = {
		{ "smtp",        2525, CFG_PROTO_SMTP, CFG_TLS_STARTTLS, 33, 0 },
		{ "submission",  2587, CFG_PROTO_SMTP, CFG_TLS_REQUIRED, 38, 0 },
		{ "submissions", 2465, CFG_PROTO_SMTP, CFG_TLS_IMPLICIT, 48, 0 },
		{ "imap",        2143, CFG_PROTO_IMAP, CFG_TLS_STARTTLS, 57, 1 },
		{ "imaps",       2993, CFG_PROTO_IMAP, CFG_TLS_IMPLICIT, 62, 1 },
		{ "pop3",        2110, CFG_PROTO_POP3, CFG_TLS_STARTTLS, 67, 2 },
		{ "pop3s",       2995, CFG_PROTO_POP3, CFG_TLS_IMPLICIT, 72, 2 },
	};
	static const struct { const char *name; enum cfg_proto proto; unsigned port; } wantb[] = {
		{ "postfix", CFG_PROTO_SMTP, 10026 },
		{ "dovecot-imap", CFG_PROTO_IMAP, 10144 },
		{ "dovecot-pop3", CFG_PROTO_POP3, 10111 },
	};
	struct cfg *c = load_example("mail-front.yaml");

	assert_string_equal(c->hostname, "mail-front.test");
	assert_int_equal(c->cores, 2);
	assert_int_equal(c->workers, 1);
	assert_int_equal(c->log_target, CFG_LOG_STDERR);
	assert_timeouts(&c->timeouts, 300, 60, 600);

	assert_int_equal(c->n_backends, 3);
	for (unsigned i = 0; i < 3; i++) {
		struct cfg_backend *b = &c->backends[i];

		assert_string_equal(b->name, wantb[i].name);
		assert_int_equal(b->protocol, wantb[i].proto);
		assert_int_equal(b->proxy, CFG_PROXY_V2);
		assert_int_equal(b->n_servers, 1);
		assert_inet(&b->addrs[0], b->addrlens[0], "127.0.0.1", wantb[i].port);
		assert_int_equal(b->connect_timeout, 5);
		assert_int_equal(b->health_interval, 10);
	}
	assert_string_equal(c->backends[0].servers[0], "127.0.0.1:10026");
	assert_int_equal(c->backends[0].line, 17);

	assert_int_equal(c->n_listeners, 7);
	for (unsigned i = 0; i < 7; i++) {
		struct cfg_listener *l = &c->listeners[i];

		assert_string_equal(l->name, want[i].name);
		assert_int_equal(l->protocol, want[i].proto);
		assert_int_equal(l->tls, want[i].tls);
		assert_string_equal(l->backend, wantb[want[i].backend].name);
		assert_ptr_equal(l->be, &c->backends[want[i].backend]);
		assert_string_equal(l->hostname, "mail-front.test");
		assert_int_equal(l->n_certs, 0);
		assert_timeouts(&l->timeouts, 300, 60, 600);
		assert_inet(&l->addr, l->addrlen, "127.0.0.1", want[i].port);
		assert_int_equal(l->line, want[i].line);
		/* TLS-first detection: on where the listener requires TLS */
		assert_int_equal(l->detect_implicit_ms, want[i].tls == CFG_TLS_REQUIRED ? 200 : 0);
	}
	cfg_free(c);
}

/* quickstart.yaml leaves most keys out: the defaults must fill them. */
static void check_quickstart(const struct cfg *c)
{
	assert_string_equal(c->hostname, "localhost");
	/* Runs as nobody once started (issue 12: never root by default). */
	assert_string_equal(c->user, "nobody");
	assert_false(c->run_as_root);
	assert_int_equal(c->cores, 1);
	assert_int_equal(c->workers, 1);
	assert_timeouts(&c->timeouts, 300, 60, 600);
	assert_int_equal(c->n_backends, 1);
	assert_string_equal(c->backends[0].name, "local");
	assert_int_equal(c->backends[0].proxy, CFG_PROXY_V2);
	assert_int_equal(c->backends[0].connect_timeout, 5);
	assert_int_equal(c->backends[0].health_interval, 10);
	assert_inet(&c->backends[0].addrs[0], c->backends[0].addrlens[0], "127.0.0.1", 10026);
	assert_int_equal(c->backends[0].line, 15);
	assert_int_equal(c->n_listeners, 2);
	assert_string_equal(c->listeners[0].name, "smtp");
	assert_int_equal(c->listeners[0].tls, CFG_TLS_STARTTLS);
	assert_inet(&c->listeners[0].addr, c->listeners[0].addrlen, "127.0.0.1", 8025);
	assert_int_equal(c->listeners[0].line, 21);
	assert_string_equal(c->listeners[1].name, "submissions");
	assert_int_equal(c->listeners[1].tls, CFG_TLS_IMPLICIT);
	assert_inet(&c->listeners[1].addr, c->listeners[1].addrlen, "127.0.0.1", 8465);
	assert_int_equal(c->listeners[1].line, 26);
	for (unsigned i = 0; i < 2; i++) {
		assert_ptr_equal(c->listeners[i].be, &c->backends[0]);
		assert_string_equal(c->listeners[i].hostname, "localhost");
		assert_timeouts(&c->listeners[i].timeouts, 300, 60, 600);
	}
}

static void test_quickstart(void **state)
{
	(void)state;
	struct cfg *c = load_example("quickstart.yaml");

	check_quickstart(c);
	cfg_free(c);
}

/* The compiled-in default is quickstart.yaml. */
static void test_embedded_default(void **state)
{
	(void)state;
	char err[512];
	struct cfg *c = NULL;

	assert_int_equal(cfg_load_string(cfg_default_yaml, cfg_default_yaml_len,
					 "<default>", &c, err, sizeof(err)), 0);
	assert_string_equal(c->path, "<default>");
	check_quickstart(c);
	cfg_free(c);
}

/* Defaults and inheritance that the examples do not exercise. */
static void test_defaults_and_overrides(void **state)
{
	(void)state;
	static const char doc[] =
		"timeouts: {plaintext: 100}\n"                  /* 1 */
		"log: syslog\n"                                 /* 2 */
		"backends:\n"                                   /* 3 */
		"  - name: dovecot\n"                           /* 4 */
		"    protocol: imap\n"                          /* 5 */
		"    proxy: none\n"                             /* 6 */
		"    servers: ['[::1]:143', 127.0.0.1:1143]\n"  /* 7 */
		"    connect_timeout: 300\n"                    /* 8 */
		"listeners:\n"                                  /* 9 */
		"  - name: imaps\n"                             /* 10 */
		"    address: '[::1]:993'\n"                    /* 11 */
		"    protocol: imap\n"                          /* 12 */
		"    tls: implicit\n"                           /* 13 */
		"    backend: dovecot\n"                        /* 14 */
		"    hostname: imap.example\n"                  /* 15 */
		"    timeouts: {handshake: 5, idle: 0}\n"       /* 16 */
		"    certs:\n"                                  /* 17 */
		"      - cert: /etc/a.pem\n"                    /* 18 */
		"        key: /etc/a.key\n"                     /* 19 */
		"      - {cert: /etc/b.pem, key: /etc/b.key}\n" /* 20 */
		"  - name: imap\n"                              /* 21 */
		"    address: '[::1]:143'\n"                    /* 22 */
		"    protocol: imap\n"                          /* 23 */
		"    tls: required\n"                           /* 24 */
		"    backend: dovecot\n";                       /* 25 */
	char err[512], host[256] = "";
	struct cfg *c = NULL;

	assert_int_equal(cfg_load_string(doc, strlen(doc), "d.yaml", &c, err, sizeof(err)), 0);
	gethostname(host, sizeof(host) - 1);
	assert_string_equal(c->hostname, host[0] ? host : "localhost");
	assert_int_equal(c->log_target, CFG_LOG_SYSLOG);
	assert_timeouts(&c->timeouts, 100, 60, 600);

	struct cfg_backend *b = &c->backends[0];
	assert_int_equal(b->protocol, CFG_PROTO_IMAP);
	assert_int_equal(b->proxy, CFG_PROXY_NONE);
	assert_int_equal(b->connect_timeout, 300);
	assert_int_equal(b->health_interval, 10);
	assert_int_equal(b->n_servers, 2);
	assert_int_equal(b->addrs[0].ss_family, AF_INET6);
	assert_int_equal(b->addrlens[0], sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&b->addrs[0])->sin6_port), 143);
	assert_inet(&b->addrs[1], b->addrlens[1], "127.0.0.1", 1143);

	struct cfg_listener *l = &c->listeners[0];
	assert_string_equal(l->hostname, "imap.example");
	assert_timeouts(&l->timeouts, 100, 5, 600);
	assert_int_equal(l->addr.ss_family, AF_INET6);
	assert_int_equal(l->n_certs, 2);
	assert_string_equal(l->certs[0].cert, "/etc/a.pem");
	assert_string_equal(l->certs[0].key, "/etc/a.key");
	assert_int_equal(l->certs[0].line, 18);
	assert_string_equal(l->certs[1].key, "/etc/b.key");
	assert_int_equal(l->certs[1].line, 20);
	assert_ptr_equal(l->be, b);
	assert_string_equal(c->listeners[1].hostname, c->hostname);
	assert_int_equal(c->listeners[1].line, 21);
	assert_string_equal(cfg_proto_name(l->protocol), "imap");
	assert_string_equal(cfg_tls_name(l->tls), "implicit");
	assert_string_equal(cfg_proxy_name(b->proxy), "none");
	/* control.metrics: loopback by default. */
	assert_string_equal(c->control.metrics, "127.0.0.1:9925");
	assert_true(c->control.metrics_on);
	assert_inet(&c->control.metrics_addr, c->control.metrics_len, "127.0.0.1", 9925);
	cfg_free(c);
}

/* control.metrics: off, and an IPv6 address. */
static void test_metrics_addr(void **state)
{
	static const char *const docs[] = { "control: {metrics: 'off'}\n",
					    "control: {metrics: '[::1]:40950'}\n" };
	const char rest[] = "backends: [{name: pf, protocol: smtp, servers: [127.0.0.1:1]}]\n"
		"listeners: [{name: s, address: 127.0.0.1:2525, protocol: smtp, tls: starttls, "
		"backend: pf}]\n";
	char doc[512], err[512];
	struct cfg *c;

	(void)state;
	for (unsigned i = 0; i < 2; i++) {
		snprintf(doc, sizeof(doc), "%s%s", docs[i], rest);
		if (cfg_load_string(doc, strlen(doc), "t.yaml", &c, err, sizeof(err)))
			fail_msg("%s: %s", docs[i], err);
		assert_int_equal(c->control.metrics_on, i == 1);
		if (i == 1) {
			const struct sockaddr_in6 *s6 = (const void *)&c->control.metrics_addr;

			assert_int_equal(s6->sin6_family, AF_INET6);
			assert_int_equal(ntohs(s6->sin6_port), 40950);
		}
		cfg_free(c);
	}
}

/* ---- broken documents ----------------------------------------------------- */

/* A valid backend and listener; line numbers below count from the first. */
#define BE \
	"backends:\n" \
	"  - name: pf\n" \
	"    protocol: smtp\n" \
	"    servers: [127.0.0.1:10026]\n"
#define LS \
	"listeners:\n" \
	"  - name: smtp\n" \
	"    address: 127.0.0.1:2525\n" \
	"    protocol: smtp\n" \
	"    tls: starttls\n" \
	"    backend: pf\n"
#define PIN "LXEWQrcmsEQBYnyp+6wy9chTD7GQPMTbAiWHF5IaSIE=" /* base64(sha256("x")) */
/* BE is 4 lines and LS 6: after "X\n" BE LS, listeners[0] starts at line 7. */

struct bad_case {
	const char *what;
	const char *yaml;
	const char *prefix;     /* the message must start with this */
	const char *reason;     /* and, if set, contain this */
};

static const struct bad_case bad_cases[] = {
	/* TLS to the backend (config_backend_tls.c); BE's mapping goes on at line 5 */
	{ "backend tls: a bad value",
	  BE "    tls: maybe\n" LS,
	  "t.yaml:5: backends[0].tls: invalid value 'maybe' (expected off, on, required)", NULL },
	{ "backend tls without ca_file or pin",
	  BE "    tls: required\n" LS,
	  "t.yaml:5: backends[0].tls: needs ca_file or pin_sha256", NULL },
	{ "backend tls: on with implicit TLS",
	  BE "    tls: on\n    tls_mode: implicit\n    pin_sha256: " PIN "\n" LS,
	  "t.yaml:6: backends[0].tls_mode: implicit TLS is not offered", "write tls: required" },
	{ "backend tls_mode: a bad value",
	  BE "    tls: required\n    tls_mode: ssl\n" LS,
	  "t.yaml:6: backends[0].tls_mode: invalid value 'ssl' (expected starttls, implicit)", NULL },
	{ "backend ca_file without server_name",
	  BE "    tls: required\n    ca_file: /etc/passwd\n" LS,
	  "t.yaml:6: backends[0].ca_file: needs server_name", NULL },
	{ "backend ca_file and pin together",
	  BE "    tls: required\n    ca_file: /etc/passwd\n    server_name: mx.example\n"
	  "    pin_sha256: " PIN "\n" LS,
	  "t.yaml:8: backends[0].pin_sha256: not with ca_file", NULL },
	{ "backend pin: hex, not base64",
	  BE "    tls: required\n    pin_sha256: 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\n" LS,
	  "t.yaml:6: backends[0].pin_sha256: '2d711642", "is not the base64 of a SHA-256" },
	{ "backend pin: base64 of 33 bytes",
	  BE "    tls: required\n    pin_sha256: LXEWQrcmsEQBYnyp+6wy9chTD7GQPMTbAiWHF5IaSIEA\n" LS,
	  "t.yaml:6: backends[0].pin_sha256: ", "is not the base64 of a SHA-256" },
	{ "backend pin: not base64",
	  BE "    tls: required\n    pin_sha256: LXEWQrcmsEQBYnyp+6wy9ch*D7GQPMTbAiWHF5IaSIE=\n" LS,
	  "t.yaml:6: backends[0].pin_sha256: ", "is not the base64 of a SHA-256" },
	{ "backend ca_file missing",
	  BE "    tls: required\n    ca_file: /nonexistent/ca.pem\n    server_name: mx.example\n" LS,
	  "t.yaml:6: backends[0].ca_file: cannot read '/nonexistent/ca.pem': No such file", NULL },
	{ "backend ca_file relative",
	  BE "    tls: required\n    ca_file: ca.pem\n    server_name: mx.example\n" LS,
	  "t.yaml:6: backends[0].ca_file: 'ca.pem' is not an absolute path", NULL },
	{ "backend server_name not a host name",
	  BE "    tls: required\n    pin_sha256: " PIN "\n    server_name: '*.example'\n" LS,
	  "t.yaml:7: backends[0].server_name: '*.example' is not a host name", NULL },
	{ "backend client_cert without client_key",
	  BE "    tls: required\n    pin_sha256: " PIN "\n    client_cert: /etc/passwd\n" LS,
	  "t.yaml:7: backends[0].client_cert: client_cert and client_key go together", NULL },
	{ "backend client_key without client_cert",
	  BE "    tls: required\n    pin_sha256: " PIN "\n    client_key: /etc/passwd\n" LS,
	  "t.yaml:7: backends[0].client_key: client_cert and client_key go together", NULL },
	{ "backend client_key unreadable",
	  BE "    tls: required\n    pin_sha256: " PIN "\n    client_cert: /etc/passwd\n"
	  "    client_key: /nonexistent.key\n" LS,
	  "t.yaml:8: backends[0].client_key: cannot read '/nonexistent.key'", NULL },
	{ "backend min_version: a bad value",
	  BE "    tls: required\n    pin_sha256: " PIN "\n    min_version: SSLv3\n" LS,
	  "t.yaml:7: backends[0].min_version: invalid value 'SSLv3' (expected TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)",
	  NULL },
	{ "backend fallback_memory out of range",
	  BE "    tls: required\n    pin_sha256: " PIN "\n    fallback_memory: 9999999\n" LS,
	  "t.yaml:7: backends[0].fallback_memory: 9999999 is out of range (0..2592000)", NULL },
	{ "backend TLS keys with tls: off",
	  BE "    server_name: mx.example\n" LS,
	  "t.yaml:5: backends[0].server_name: only with tls: on or required", NULL },
	{ "backend TLS keys with no tls key",
	  BE "    tls: off\n    min_version: TLSv1.3\n" LS,
	  "t.yaml:6: backends[0].min_version: only with tls: on or required", NULL },
	{ "tickets.export beside a key file",
	  BE LS "tickets:\n  key_file: /etc/sluice/ticket.keys\n  export: /run/sluice/keys\n",
	  "t.yaml:13: tickets.export: not with tickets.key_file", NULL },
	{ "tickets.export: a relative path",
	  BE LS "tickets:\n  export: ticket.keys\n",
	  "t.yaml:12: tickets.export: 'ticket.keys' is not an absolute path", NULL },
	{ "control.drain_grace out of range",
	  BE LS "control:\n  drain_grace: 4000\n",
	  "t.yaml:12: control.drain_grace: ", NULL },
	{ "control.metrics: a host name",
	  BE LS "control:\n  metrics: localhost:9925\n",
	  "t.yaml:12: control.metrics: 'localhost' is not a numeric IPv4 address", NULL },
	{ "control.metrics: no port",
	  BE LS "control:\n  metrics: 127.0.0.1\n",
	  "t.yaml:12: control.metrics: cannot parse '127.0.0.1'", NULL },
	{ "control.metrics: port out of range",
	  BE LS "control:\n  metrics: '[::1]:99250'\n",
	  "t.yaml:12: control.metrics: ", "expected 1..65535" },
	{ "control.metrics: IPv6 without brackets",
	  BE LS "control:\n  metrics: '::1:9925'\n",
	  "t.yaml:12: control.metrics: ", NULL },
	{ "quirk switch with a bad value",
	  BE LS "    quirks:\n      bare_lf: sometimes\n",
	  "t.yaml:12: listeners[0].quirks.bare_lf: invalid value 'sometimes' (expected allow, close)",
	  NULL },
	{ "no_ems switch with a bad value",
	  BE LS "    quirks:\n      trailing_blanks: close\n      sslv2_hello: close\n      no_ems: refuse\n",
	  "t.yaml:14: listeners[0].quirks.no_ems: invalid value 'refuse' (expected allow, close)",
	  NULL },
	{ "unknown quirk switch",
	  BE LS "    quirks:\n      second_starttls: close\n      colour: red\n",
	  "t.yaml:13: listeners[0].quirks.colour: unknown key", NULL },
	{ "detect_implicit_ms out of range",
	  BE LS "    detect_implicit_ms: 9000\n",
	  "t.yaml:11: listeners[0].detect_implicit_ms: 9000 is out of range (0..5000)", NULL },
	{ "detect_implicit_ms on an implicit listener",
	  BE "listeners:\n  - name: smtps\n    address: 127.0.0.1:2465\n    protocol: smtp\n"
	  "    tls: implicit\n    backend: pf\n    detect_implicit_ms: 200\n",
	  "t.yaml:11: listeners[0].detect_implicit_ms: only for a listener with tls: starttls or required",
	  NULL },
	{ "user that does not exist",
	  "user: no-such-user-here\n" BE LS,
	  "t.yaml:1: user: no such user 'no-such-user-here'", NULL },
	/* Finding 2 of issue 12: the name reaches every banner. */
	{ "hostname with CR LF",
	  "hostname: \"mx.example.org\\r\\n250 forged\"\n" BE LS,
	  "t.yaml:1: hostname: not a valid host name", NULL },
	{ "hostname with a space",
	  "hostname: mx example.org\n" BE LS,
	  "t.yaml:1: hostname: not a valid host name", NULL },
	{ "hostname label ending in a hyphen",
	  "hostname: mx-.example.org\n" BE LS,
	  "t.yaml:1: hostname: not a valid host name", NULL },
	{ "listener hostname with LF",
	  BE LS "    hostname: \"a.example\\nb\"\n",
	  "t.yaml:11: listeners[0].hostname: not a valid host name", NULL },
	{ "unknown top-level key",
	  "bogus: 1\n" BE LS,
	  "t.yaml:1: bogus: unknown key", NULL },
	{ "unknown key in a listener",
	  BE LS "    colour: blue\n",
	  "t.yaml:11: listeners[0].colour: unknown key", NULL },
	{ "unknown key in a listener's timeouts",
	  BE LS "    timeouts:\n      idel: 5\n",
	  "t.yaml:12: listeners[0].timeouts.idel: unknown key", NULL },
	{ "bad tls value",
	  BE LS "  - name: x\n    address: 127.0.0.1:26\n    protocol: smtp\n"
	  "    tls: sometimes\n    backend: pf\n",
	  "t.yaml:14: listeners[1].tls: invalid value 'sometimes' "
	  "(expected off, starttls, required, implicit)", NULL },
	{ "tls as a number",
	  BE "listeners:\n  - {name: a, address: 127.0.0.1:1, protocol: smtp, tls: 2,\n"
	  "     backend: pf}\n",
	  "t.yaml:6: listeners[0].tls: invalid value '2'", NULL },
	{ "bad log target",
	  "log: file\n" BE LS,
	  "t.yaml:1: log: invalid value 'file' (expected stderr, syslog)", NULL },
	{ "bad proxy",
	  "backends:\n  - name: pf\n    protocol: smtp\n    proxy: v3\n"
	  "    servers: [127.0.0.1:1]\n" LS,
	  "t.yaml:4: backends[0].proxy: invalid value 'v3' (expected v2, v1, none)", NULL },
	{ "listener without protocol",
	  BE LS "  - name: x\n    address: 127.0.0.1:26\n    tls: off\n    backend: pf\n",
	  "t.yaml:11: listeners[1]: missing required key 'protocol'", NULL },
	{ "no listeners at all",
	  BE,
	  "t.yaml:1: missing required key 'listeners'", NULL },
	{ "empty listeners",
	  BE "listeners: []\n",
	  "t.yaml:5: listeners: at least 1 entry required", NULL },
	{ "cores is a sequence",
	  "cores: [1]\n" BE LS,
	  "t.yaml:1: cores: expected a non-negative integer, got a sequence", NULL },
	{ "servers is a scalar",
	  "backends:\n  - name: pf\n    protocol: smtp\n    servers: 127.0.0.1:1\n" LS,
	  "t.yaml:4: backends[0].servers: expected a sequence, got a scalar", NULL },
	{ "cores is not a number",
	  "cores: many\n" BE LS,
	  "t.yaml:1: cores: invalid value 'many'", NULL },
	{ "cores out of range",
	  "cores: 65\n" BE LS,
	  "t.yaml:1: cores: 65 is out of range (1..64)", NULL },
	{ "workers out of range",
	  "workers: 65\n" BE LS,
	  "t.yaml:1: workers: 65 is out of range (0..64)", NULL },
	{ "global timeout zero",
	  "timeouts:\n  plaintext: 10\n  handshake: 0\n" BE LS,
	  "t.yaml:3: timeouts.handshake: 0 is out of range (1..86400)", NULL },
	{ "listener timeout too long",
	  BE LS "    timeouts: {idle: 86401}\n",
	  "t.yaml:11: listeners[0].timeouts.idle: 86401 is out of range (0..86400)", NULL },
	{ "connect_timeout out of range",
	  "backends:\n  - name: pf\n    protocol: smtp\n    servers: [127.0.0.1:1]\n"
	  "    connect_timeout: 301\n" LS,
	  "t.yaml:5: backends[0].connect_timeout: 301 is out of range (1..300)", NULL },
	{ "server without port",
	  "backends:\n  - name: pf\n    protocol: smtp\n    servers:\n"
	  "      - 127.0.0.1:10026\n      - 127.0.0.1\n" LS,
	  "t.yaml:6: backends[0].servers[1]: cannot parse address '127.0.0.1' "
	  "(expected HOST:PORT)", NULL },
	{ "listener port out of range",
	  BE "listeners:\n  - name: smtp\n    address: 127.0.0.1:70000\n"
	  "    protocol: smtp\n    tls: off\n    backend: pf\n",
	  "t.yaml:7: listeners[0].address: port out of range", NULL },
	{ "unbracketed IPv6 listener",
	  BE "listeners:\n  - name: smtp\n    address: '::1:25'\n"
	  "    protocol: smtp\n    tls: off\n    backend: pf\n",
	  "t.yaml:7: listeners[0].address: cannot parse address '::1:25'", NULL },
	{ "unknown backend",
	  BE LS "  - name: x\n    address: 127.0.0.1:26\n    protocol: smtp\n"
	  "    tls: off\n    backend: dovecot\n",
	  "t.yaml:15: listeners[1].backend: no backend named 'dovecot'", NULL },
	{ "protocol mismatch",
	  BE "listeners:\n  - name: imap\n    address: 127.0.0.1:143\n"
	  "    protocol: imap\n    tls: off\n    backend: pf\n",
	  "t.yaml:10: listeners[0].backend: backend 'pf' speaks smtp, not imap", NULL },
	{ "duplicate backend name",
	  BE "  - name: pf\n    protocol: smtp\n    servers: [127.0.0.1:1]\n" LS,
	  "t.yaml:5: backends[1].name: duplicate backend name 'pf'", "line 2" },
	{ "duplicate listener name",
	  BE LS "  - name: smtp\n    address: 127.0.0.1:26\n    protocol: smtp\n"
	  "    tls: off\n    backend: pf\n",
	  "t.yaml:11: listeners[1].name: duplicate listener name 'smtp'", "line 6" },
	{ "duplicate listener address",
	  BE LS "  - name: x\n    address: 127.0.0.1:2525\n    protocol: smtp\n"
	  "    tls: off\n    backend: pf\n",
	  "t.yaml:12: listeners[1].address: address '127.0.0.1:2525' already used by listeners[0]",
	  NULL },
	{ "cert entry without key",
	  BE LS "    certs:\n      - cert: /a.pem\n        key: /a.key\n      - cert: /b.pem\n",
	  "t.yaml:14: listeners[0].certs[1]: missing required key 'key'", NULL },
	{ "duplicate key",
	  "cores: 1\nworkers: 1\ncores: 2\n" BE LS,
	  "t.yaml:3: cores: duplicate key", NULL },
	{ "empty name",
	  BE "listeners:\n  - name: ''\n    address: 127.0.0.1:1\n"
	  "    protocol: smtp\n    tls: off\n    backend: pf\n",
	  "t.yaml:6: listeners[0].name: must not be empty", NULL },
	{ "YAML syntax error",
	  BE "listeners:\n  - name: smtp\n    address: [127.0.0.1:25\n",
	  "t.yaml:8:1: syntax error: ", NULL },
	{ "bad indentation",
	  BE "listeners:\n  - name: smtp\n   address: 127.0.0.1:25\n",
	  "t.yaml:7:", "syntax error" },
	{ "document is a sequence",
	  "- a\n- b\n",
	  "t.yaml:1: expected a mapping, got a sequence", NULL },
	{ "empty document",
	  "# nothing here\n",
	  "t.yaml:1: empty configuration", NULL },
};

/* Every broken document: rejected, exact prefix, nothing left in *out. */
/* workers: 0 is the inline mode (each core runs its own handshakes);
 * left out, one worker thread. */
static void test_workers(void **state)
{
	(void)state;
	static const struct { const char *doc; unsigned cores, workers; } t[] = {
		{ "workers: 0\n" BE LS, 1, 0 },
		{ "cores: 4\nworkers: 0\n" BE LS, 4, 0 },
		{ "workers: 3\n" BE LS, 1, 3 },
		{ BE LS, 1, 1 },
	};

	for (unsigned i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char err[512];
		struct cfg *c = NULL;

		if (cfg_load_string(t[i].doc, strlen(t[i].doc), "w.yaml", &c, err, sizeof(err)))
			fail_msg("case %u: %s", i, err);
		assert_int_equal(c->cores, t[i].cores);
		assert_int_equal(c->workers, t[i].workers);
		cfg_free(c);
	}
}

/* quirks: the keys come from the quirk table; what is not written gets the
 * table's default, a quirk with no switch stays fixed. */
static void test_quirk_actions(void **state)
{
	static const char yaml[] = BE LS
		"    quirks:\n      bare_lf: close\n      no_ems: allow\n      sslv2_hello: close\n";
	bool fixed[CFG_QUIRK__COUNT];
	struct cfg *c = NULL;
	char err[512];
	int rc;

	(void)state;
	rc = cfg_load_string(yaml, sizeof(yaml) - 1, "q.yaml", &c, err, sizeof(err));
	if (rc)
		print_error("%s\n", err);
	assert_int_equal(rc, 0);
	const enum cfg_quirk_action *a = c->listeners[0].quirks.action;
	assert_int_equal(a[CFG_QUIRK_bare_lf], CFG_QUIRK_CLOSE);
	assert_int_equal(a[CFG_QUIRK_sslv2_hello], CFG_QUIRK_CLOSE);
	assert_int_equal(a[CFG_QUIRK_no_ems], CFG_QUIRK_ALLOW);
	assert_int_equal(a[CFG_QUIRK_second_starttls], CFG_QUIRK_ALLOW);
	assert_int_equal(a[CFG_QUIRK_trailing_blanks], CFG_QUIRK_ALLOW);
	assert_int_equal(a[CFG_QUIRK_not_tls_after_starttls], CFG_QUIRK_FIXED);
	assert_int_equal(a[CFG_QUIRK_implicit_on_starttls], CFG_QUIRK_FIXED);
	assert_string_equal(cfg_quirk_key(CFG_QUIRK_pipelined_starttls), "pipelined_starttls");
	assert_string_equal(cfg_quirk_action_name(a[CFG_QUIRK_bare_lf]), "close");
	assert_string_equal(cfg_quirk_action_name(a[CFG_QUIRK_bad_hello]), "fixed");
	for (unsigned q = 0; q < CFG_QUIRK__COUNT; q++)
		fixed[q] = a[q] == CFG_QUIRK_FIXED;
	cfg_free(c);
	c = NULL;

	/* Every quirk with a switch is a key the loader takes, with either
	 * value; a fixed one is an unknown key. */
	for (unsigned q = 0; q < CFG_QUIRK__COUNT; q++) {
		for (unsigned v = 0; v < 2; v++) {
			char doc[1024];

			snprintf(doc, sizeof(doc), BE LS "    quirks:\n      %s: %s\n",
				 cfg_quirk_key(q), v ? "close" : "allow");
			rc = cfg_load_string(doc, strlen(doc), "q.yaml", &c, err, sizeof(err));
			if (fixed[q]) {
				assert_int_not_equal(rc, 0);
				assert_non_null(strstr(err, "unknown key"));
				continue;
			}
			if (rc)
				fail_msg("%s", err);
			assert_int_equal(c->listeners[0].quirks.action[q],
					 v ? CFG_QUIRK_CLOSE : CFG_QUIRK_ALLOW);
			cfg_free(c);
			c = NULL;
		}
	}
}

/* detect_implicit_ms: 200 by default on tls: required, 0 on starttls, a
 * written value (the maximum hold) as written, 0 turns it off. */
static void test_detect_implicit_defaults(void **state)
{
	static const struct {
		const char *tls, *line;   /* line: "" for none */
		unsigned want;
	} cases[] = {
		{ "required", "", 200 },
		{ "starttls", "", 0 },
		{ "required", "    detect_implicit_ms: 0\n", 0 },
		{ "required", "    detect_implicit_ms: 1000\n", 1000 },
		{ "starttls", "    detect_implicit_ms: 150\n", 150 },
		{ "implicit", "", 0 },
		{ "off", "", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char doc[1024], err[512];
		struct cfg *c = NULL;
		int rc;

		snprintf(doc, sizeof(doc), BE "listeners:\n  - name: l\n"
			 "    address: 127.0.0.1:2587\n    protocol: smtp\n"
			 "    tls: %s\n    backend: pf\n%s", cases[i].tls, cases[i].line);
		rc = cfg_load_string(doc, strlen(doc), "d.yaml", &c, err, sizeof(err));
		if (rc)
			fail_msg("case %zu: %s", i, err);
		if (c->listeners[0].detect_implicit_ms != cases[i].want)
			fail_msg("case %zu (tls: %s %s): %u, want %u", i, cases[i].tls, cases[i].line,
				 c->listeners[0].detect_implicit_ms, cases[i].want);
		cfg_free(c);
	}
}

/* A backend's TLS keys: defaults, what is written, the pin decoded. */
static void test_backend_tls(void **state)
{
	(void)state;
	static const char doc[] =
		BE "    tls: required\n    tls_mode: implicit\n    pin_sha256: " PIN "\n"
		"    server_name: imap.example.net\n    client_cert: /etc/passwd\n"
		"    client_key: /etc/passwd\n    min_version: TLSv1.3\n    fallback_memory: 0\n"
		"  - name: opportunistic\n    protocol: smtp\n    servers: [127.0.0.1:10027]\n"
		"    tls: on\n    ca_file: /etc/passwd\n    server_name: mx.example\n"
		"  - name: plain\n    protocol: smtp\n    servers: [127.0.0.1:10028]\n" LS;
	static const unsigned char pin[32] = {
		0x2d, 0x71, 0x16, 0x42, 0xb7, 0x26, 0xb0, 0x44, 0x01, 0x62, 0x7c, 0xa9, 0xfb, 0xac,
		0x32, 0xf5, 0xc8, 0x53, 0x0f, 0xb1, 0x90, 0x3c, 0xc4, 0xdb, 0x02, 0x25, 0x87, 0x17,
		0x92, 0x1a, 0x48, 0x81,
	};
	char err[512];
	struct cfg *c = NULL;

	if (cfg_load_string(doc, strlen(doc), "d.yaml", &c, err, sizeof(err)))
		fail_msg("%s", err);
	const struct cfg_backend_tls *t = &c->backends[0].tls;
	assert_int_equal(t->tls, CFG_BE_TLS_REQUIRED);
	assert_int_equal(t->mode, CFG_BE_TLS_IMPLICIT);
	assert_true(t->has_pin);
	assert_memory_equal(t->pin, pin, sizeof(pin));
	assert_string_equal(t->server_name, "imap.example.net");
	assert_string_equal(t->client_cert, "/etc/passwd");
	assert_int_equal(t->min_version, CFG_TLS_V1_3);
	assert_int_equal(t->fallback_memory, 0);
	assert_string_equal(cfg_be_tls_name(t->tls), "required");
	assert_string_equal(cfg_tls_version_name(t->min_version), "TLSv1.3");

	t = &c->backends[1].tls;
	assert_int_equal(t->tls, CFG_BE_TLS_ON);
	assert_int_equal(t->mode, CFG_BE_TLS_STARTTLS);
	assert_false(t->has_pin);
	assert_string_equal(t->ca_file, "/etc/passwd");
	assert_int_equal(t->min_version, CFG_TLS_V1_2);
	assert_int_equal(t->fallback_memory, CFG_FALLBACK_MEMORY_DEFAULT);

	t = &c->backends[2].tls;
	assert_int_equal(t->tls, CFG_BE_TLS_OFF);
	assert_null(t->server_name);
	assert_string_equal(cfg_be_tls_name(t->tls), "off");
	cfg_free(c);
}

static void test_bad_documents(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *t = &bad_cases[i];
		struct cfg *c = (struct cfg *)&c; /* must be reset to NULL */
		char err[512] = "";
		int rc;

		rc = cfg_load_string(t->yaml, strlen(t->yaml), "t.yaml", &c, err, sizeof(err));
		if (rc != -EINVAL || strncmp(err, t->prefix, strlen(t->prefix)) ||
		    (t->reason && !strstr(err, t->reason)))
			fail_msg("%s: rc %d, got\n    %s\nwant prefix\n    %s%s%s", t->what, rc,
				 err, t->prefix, t->reason ? "\nand\n    " : "",
				 t->reason ? t->reason : "");
		assert_null(c);
	}
}

/* ---- protocol ftp (config_ftp.c) ----------------------------------------- */

#define FBE \
	"backends:\n" \
	"  - name: vs\n" \
	"    protocol: ftp\n" \
	"    proxy: none\n" \
	"    servers: [127.0.0.1:2121]\n"
#define FLS \
	"listeners:\n" \
	"  - name: ftp\n" \
	"    address: 127.0.0.1:2021\n" \
	"    protocol: ftp\n" \
	"    tls: required\n" \
	"    backend: vs\n"
/* FBE is 5 lines and FLS 6: the listener's keys go on at line 12. */

/* listeners[].ftp: defaults, the range and the data address. */
static void test_ftp(void **state)
{
	static const char doc1[] = FBE FLS "    ftp: {data_ports: 44100-44199}\n";
	static const char doc2[] = FBE FLS "    ftp:\n      data_ports: \"44100\"\n"
		"      data_address: 192.0.2.10\n      require_resumption: false\n"
		"      require_ems: true\n      allow_prot_c: true\n      data_timeout: 5\n";
	char err[512];
	struct cfg *c;
	const struct cfg_ftp *f;

	(void)state;
	if (cfg_load_string(doc1, strlen(doc1), "f.yaml", &c, err, sizeof(err)))
		fail_msg("%s", err);
	f = &c->listeners[0].ftp;
	assert_int_equal(c->listeners[0].protocol, CFG_PROTO_FTP);
	assert_int_equal(f->port_lo, 44100);
	assert_int_equal(f->port_hi, 44199);
	assert_true(f->require_resumption);
	assert_false(f->require_ems);
	assert_false(f->allow_prot_c);
	assert_int_equal(f->data_timeout, 30);
	assert_int_equal(((const struct sockaddr_in *)&f->data_addr)->sin_addr.s_addr,
			 htonl(0x7f000001));
	cfg_free(c);
	if (cfg_load_string(doc2, strlen(doc2), "f.yaml", &c, err, sizeof(err)))
		fail_msg("%s", err);
	f = &c->listeners[0].ftp;
	assert_int_equal(f->port_lo, 44100);
	assert_int_equal(f->port_hi, 44100);
	assert_false(f->require_resumption);
	assert_true(f->require_ems);
	assert_true(f->allow_prot_c);
	assert_int_equal(f->data_timeout, 5);
	assert_int_equal(((const struct sockaddr_in *)&f->data_addr)->sin_addr.s_addr,
			 htonl(0xc000020a));
	cfg_free(c);
	/* an IPv6 listener: its own address, or an IPv6 data_address */
	for (int k = 0; k < 2; k++) {
		static const char *const docs[] = {
			FBE "listeners:\n  - name: ftp\n    address: \"[2001:db8::5]:2021\"\n"
			"    protocol: ftp\n    tls: required\n    backend: vs\n"
			"    ftp: {data_ports: 1-2}\n",
			FBE "listeners:\n  - name: ftp\n    address: \"[::]:2021\"\n"
			"    protocol: ftp\n    tls: required\n    backend: vs\n"
			"    ftp: {data_ports: 1-2, data_address: \"2001:db8::5\"}\n",
		};
		const struct sockaddr_in6 *a6;
		struct in6_addr want;

		if (cfg_load_string(docs[k], strlen(docs[k]), "f.yaml", &c, err, sizeof(err)))
			fail_msg("%s", err);
		a6 = (const struct sockaddr_in6 *)&c->listeners[0].ftp.data_addr;
		assert_int_equal(a6->sin6_family, AF_INET6);
		assert_int_equal(a6->sin6_port, 0);
		assert_int_equal(inet_pton(AF_INET6, "2001:db8::5", &want), 1);
		assert_memory_equal(&a6->sin6_addr, &want, sizeof(want));
		cfg_free(c);
	}
}

/* An FTP backend sends no PROXY header unless told: vsftpd reads none. */
static void test_ftp_proxy_default(void **state)
{
	static const char doc[] = "backends:\n  - name: vs\n    protocol: ftp\n"
		"    servers: [127.0.0.1:2121]\n  - name: pp\n    protocol: ftp\n"
		"    proxy: v2\n    servers: [127.0.0.1:2122]\n" FLS
		"    ftp: {data_ports: 44100-44199}\n";
	char err[512];
	struct cfg *c;

	(void)state;
	if (cfg_load_string(doc, strlen(doc), "f.yaml", &c, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(c->backends[0].proxy, CFG_PROXY_NONE);
	assert_int_equal(c->backends[1].proxy, CFG_PROXY_V2);
	cfg_free(c);
}

static const struct bad_case ftp_bad_cases[] = {
	{ "ftp without data_ports", FBE FLS,
	  "t.yaml:9: listeners[0].protocol: protocol ftp needs ftp.data_ports", NULL },
	{ "data_ports not a range", FBE FLS "    ftp: {data_ports: 44199-44100}\n",
	  "t.yaml:12: listeners[0].ftp.data_ports: '44199-44100' is not a port range", NULL },
	{ "data_ports with a word", FBE FLS "    ftp: {data_ports: lots}\n",
	  "t.yaml:12: listeners[0].ftp.data_ports: 'lots' is not a port range", NULL },
	{ "data_address IPv6", FBE FLS "    ftp: {data_ports: 1-2, data_address: \"2001:db8::1\"}\n",
	  "t.yaml:12: listeners[0].ftp.data_address: '2001:db8::1' is not an IPv4 address", NULL },
	{ "data_address IPv4 on an IPv6 listener",
	  FBE "listeners:\n  - name: ftp\n    address: \"[2001:db8::5]:2021\"\n    protocol: ftp\n"
	  "    tls: required\n    backend: vs\n    ftp: {data_ports: 1-2, data_address: 192.0.2.1}\n",
	  "t.yaml:12: listeners[0].ftp.data_address: '192.0.2.1' is not an IPv6 address", NULL },
	{ "IPv6 wildcard listener without data_address",
	  FBE "listeners:\n  - name: ftp\n    address: \"[::]:2021\"\n    protocol: ftp\n"
	  "    tls: required\n    backend: vs\n    ftp: {data_ports: 1-2}\n",
	  "t.yaml:12: listeners[0].ftp.data_address: needed", NULL },
	{ "wildcard listener without data_address",
	  FBE "listeners:\n  - name: ftp\n    address: 0.0.0.0:2021\n    protocol: ftp\n"
	  "    tls: required\n    backend: vs\n    ftp: {data_ports: 1-2}\n",
	  "t.yaml:12: listeners[0].ftp.data_address: needed", NULL },
	{ "data_timeout out of range", FBE FLS "    ftp: {data_ports: 1-2, data_timeout: 0}\n",
	  "t.yaml:12: listeners[0].ftp.data_timeout:", NULL },
	{ "ftp keys on an smtp listener", BE LS "    ftp: {data_ports: 1-2}\n",
	  "t.yaml:11: listeners[0].ftp: only for protocol ftp", NULL },
	{ "ftp backend with TLS",
	  "backends:\n  - name: vs\n    protocol: ftp\n    proxy: none\n    tls: required\n"
	  "    pin_sha256: " PIN "\n    servers: [127.0.0.1:2121]\n"
	  "listeners:\n  - name: ftp\n    address: 127.0.0.1:2021\n    protocol: ftp\n"
	  "    tls: required\n    backend: vs\n    ftp: {data_ports: 1-2}\n",
	  "t.yaml:13: listeners[0].backend: backend 'vs': TLS to an FTP backend is not offered", NULL },
	{ "ftp on the native stack",
	  FBE FLS "    ftp: {data_ports: 1-2}\nnative:\n  ports:\n    - device: net_tap0\n"
	  "      ipv4: 127.0.0.1/8\n",
	  "t.yaml:9: listeners[0].protocol: ftp is not supported on the native stack", NULL },
};

static void test_ftp_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ftp_bad_cases) / sizeof(ftp_bad_cases[0]); i++) {
		const struct bad_case *t = &ftp_bad_cases[i];
		struct cfg *c = (struct cfg *)&c;
		char err[512] = "";
		int rc;

		rc = cfg_load_string(t->yaml, strlen(t->yaml), "t.yaml", &c, err, sizeof(err));
		if (rc != -EINVAL || strncmp(err, t->prefix, strlen(t->prefix)) ||
		    (t->reason && !strstr(err, t->reason)))
			fail_msg("%s: rc %d, got\n    %s\nwant prefix\n    %s", t->what, rc, err,
				 t->prefix);
		assert_null(c);
	}
}

/* A bad document read from a file is named by its path. */
static void test_bad_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_config.XXXXXX", path[64], err[512], want[128];
	static const char doc[] = BE LS "bogus: 1\n";
	struct cfg *c = NULL;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/mail.yaml", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(doc, f);
	fclose(f);
	assert_int_equal(cfg_load_file(path, &c, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:11: bogus: unknown key", path);
	assert_string_equal(err, want);
	assert_null(c);
	unlink(path);
	rmdir(dir);
}

/* A missing file: the message names the file and the system's reason. */
static void test_missing_file(void **state)
{
	(void)state;
	char err[512], want[256];
	struct cfg *c = NULL;

	assert_int_equal(cfg_load_file("/nonexistent/sluice.yaml", &c, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "/nonexistent/sluice.yaml: %s", strerror(ENOENT));
	assert_string_equal(err, want);
	assert_null(c);
}

/* ---- the native stack ----------------------------------------------------- */

/* A backend behind a gateway and a listener on the port's address. */
#define NB \
	"backends:\n" \
	"  - name: pf\n" \
	"    protocol: smtp\n" \
	"    servers: [\"198.51.100.2:10026\", \"[2001:db8:2::2]:10026\"]\n" \
	"listeners:\n" \
	"  - name: smtp\n" \
	"    address: 192.0.2.10:2525\n" \
	"    protocol: smtp\n" \
	"    tls: starttls\n" \
	"    backend: pf\n"
/* A port that makes NB valid: lines 11 to 17 after NB. */
#define NP \
	"native:\n" \
	"  ports:\n" \
	"    - device: net_tap0,iface=sl0\n" \
	"      ipv4: 192.0.2.10/24\n" \
	"      ipv4_gateway: 192.0.2.1\n" \
	"      ipv6: 2001:db8:1::10/64\n" \
	"      ipv6_gateway: fe80::1\n"

/* Every key of the native section, read back; defaults where absent. */
static void test_native(void **state)
{
	(void)state;
	static const char doc[] =
		"cores: 2\n" NB
		"native:\n"
		"  eal:\n"
		"    hugepages: false\n"
		"    memory_mb: 512\n"
		"    args: [\"--log-level=pmd.net.tap:debug\"]\n"
		"  ports:\n"
		"    - device: net_tap0,iface=sl0\n"
		"      mac: 02:00:5e:00:53:01\n"
		"      ipv4: 192.0.2.10/24\n"
		"      ipv6: 2001:db8:1::10/64\n"
		"      mtu: 9000\n"
		"    - device: 0000:03:00.0\n"
		"      ipv4: 198.51.100.10/24\n"
		"      ipv6: 2001:db8:2::10/48\n"
		"      ipv6_gateway: 2001:db8:2::1\n"
		"  cpus: [1, 0]\n"
		"  idle_polls: 10\n"
		"  idle_pause_us: 0\n"
		"  cc: newreno\n"
		"  max_conns: 1024\n"
		"  syn_backlog: 64\n"
		"  neighbours:\n"
		"    - address: 192.0.2.1\n"
		"      mac: 02:00:5e:00:53:fe\n"
		"    - address: fe80::1\n"
		"      mac: 02:00:5e:00:53:fd\n";
	static const unsigned char ip4[4] = { 192, 0, 2, 10 }, mac[6] = { 2, 0, 0x5e, 0, 0x53, 1 };
	char err[512] = "";
	struct cfg *c = NULL;
	struct cfg_native *n;

	if (cfg_load_string(doc, strlen(doc), "n.yaml", &c, err, sizeof(err)))
		fail_msg("%s", err);
	n = c->native;
	assert_non_null(n);
	assert_int_equal(n->line, 12);
	assert_false(n->eal.hugepages);
	assert_int_equal(n->eal.memory_mb, 512);
	assert_true(n->eal.no_pci == false); /* a PCI port: PCI stays on */
	assert_int_equal(n->eal.n_args, 1);
	assert_string_equal(n->eal.args[0], "--log-level=pmd.net.tap:debug");
	assert_int_equal(n->n_ports, 2);
	assert_string_equal(n->ports[0].name, "net_tap0");
	assert_false(n->ports[0].pci);
	assert_true(n->ports[0].has_mac);
	assert_memory_equal(n->ports[0].mac_addr, mac, 6);
	assert_true(n->ports[0].has_ip4);
	assert_memory_equal(n->ports[0].ip4, ip4, 4);
	assert_int_equal(n->ports[0].ip4_prefix, 24);
	assert_false(n->ports[0].has_gw4);
	assert_int_equal(n->ports[0].ip6_prefix, 64);
	assert_int_equal(n->ports[0].mtu, 9000);
	assert_int_equal(n->ports[0].line, 18);
	assert_string_equal(n->ports[1].name, "0000:03:00.0");
	assert_true(n->ports[1].pci);
	assert_false(n->ports[1].has_mac);
	assert_true(n->ports[1].has_gw6);
	assert_int_equal(n->ports[1].mtu, 1500);
	assert_int_equal(n->n_cpus, 2);
	assert_int_equal(n->cpus[0], 1);
	assert_int_equal(n->idle_polls, 10);
	assert_int_equal(n->idle_pause_us, 0);
	assert_int_equal(n->mbufs, 4096 + 2 * 2048);
	assert_string_equal(cfg_cc_name(n->cc), "newreno");
	assert_int_equal(n->max_conns, 1024);
	assert_int_equal(n->syn_backlog, 64);
	assert_int_equal(n->n_neighbours, 2);
	assert_false(n->neighbours[0].v6);
	assert_int_equal(n->neighbours[0].addr[3], 1);
	assert_int_equal(n->neighbours[0].mac_addr[5], 0xfe);
	assert_int_equal(n->neighbours[0].line, 34);
	assert_true(n->neighbours[1].v6);
	assert_int_equal(n->neighbours[1].addr[0], 0xfe);
	cfg_free(c);

	/* The smallest native section: defaults, vdevs only (PCI off). */
	if (cfg_load_string(NB NP, strlen(NB NP), "n.yaml", &c, err, sizeof(err)))
		fail_msg("%s", err);
	n = c->native;
	assert_true(n->eal.hugepages);
	assert_int_equal(n->eal.memory_mb, 0);
	assert_true(n->eal.no_pci);
	assert_int_equal(n->idle_polls, 64);
	assert_int_equal(n->idle_pause_us, 100);
	assert_string_equal(cfg_cc_name(n->cc), "cubic");
	assert_int_equal(n->max_conns, 65536);
	assert_int_equal(n->syn_backlog, 128);
	assert_int_equal(n->n_neighbours, 0);
	assert_true(n->ports[0].has_gw4 && n->ports[0].has_gw6);
	cfg_free(c);

	/* Without the section: the kernel stack. */
	if (cfg_load_string(BE LS, strlen(BE LS), "k.yaml", &c, err, sizeof(err)))
		fail_msg("%s", err);
	assert_null(c->native);
	cfg_free(c);
}

static const struct bad_case native_bad_cases[] = {
	{ "multicast MAC",
	  NB NP "      mac: 01:00:5e:00:00:01\n",
	  "t.yaml:18: native.ports[0].mac: '01:00:5e:00:00:01' is not a unicast MAC address", NULL },
	{ "address without a prefix",
	  NB "native:\n  ports:\n    - device: net_tap0\n      ipv4: 192.0.2.10\n",
	  "t.yaml:14: native.ports[0].ipv4: cannot parse '192.0.2.10' (expected ADDRESS/PREFIX", NULL },
	{ "gateway off the port's network",
	  NB "native:\n  ports:\n    - device: net_tap0\n      ipv4: 192.0.2.10/24\n"
	  "      ipv4_gateway: 198.51.100.1\n",
	  "t.yaml:15: native.ports[0].ipv4_gateway: 198.51.100.1 is not on the port's network "
	  "192.0.2.10/24", NULL },
	{ "link-local port address",
	  NB "native:\n  ports:\n    - device: net_tap0\n      ipv6: fe80::10/64\n",
	  "t.yaml:14: native.ports[0].ipv6: 'fe80::10/64' is link-local", NULL },
	{ "port without an address",
	  NB "native:\n  ports:\n    - device: net_tap0\n      mtu: 1500\n",
	  "t.yaml:13: native.ports[0]: a port needs ipv4 or ipv6", NULL },
	{ "device that is neither PCI nor a vdev",
	  NB "native:\n  ports:\n    - device: eth0\n      ipv4: 192.0.2.10/24\n",
	  "t.yaml:13: native.ports[0].device: 'eth0' is neither a PCI address nor a vdev", NULL },
	{ "the same device twice",
	  NB NP "    - device: net_tap0,iface=other\n      ipv4: 203.0.113.1/24\n",
	  "t.yaml:18: native.ports[1].device: device 'net_tap0' is already native.ports[0] (line 13)",
	  NULL },
	{ "MTU too small for IPv6",
	  NB NP "      mtu: 1000\n",
	  "t.yaml:18: native.ports[0].mtu: 1000 is out of range (1280..9000)", NULL },
	{ "listener on an address no port has",
	  NB "native:\n  ports:\n    - device: net_tap0\n      ipv4: 192.0.2.20/24\n"
	  "      ipv4_gateway: 192.0.2.1\n      ipv6: 2001:db8:1::10/64\n"
	  "      ipv6_gateway: fe80::1\n",
	  "t.yaml:7: listeners[0].address: '192.0.2.10:2525' is not an address of a native port", NULL },
	{ "backend no port reaches",
	  NB "native:\n  ports:\n    - device: net_tap0\n      ipv4: 192.0.2.10/24\n",
	  "t.yaml:4: backends[0].servers[0]: '198.51.100.2:10026' is on no native port's network", NULL },
	{ "one CPU per core",
	  NB NP "  cpus: [0, 1]\n",
	  "t.yaml:18: native.cpus: 2 CPUs for 1 cores (one per core)", NULL },
	{ "idle pause out of range",
	  NB NP "  idle_pause_us: 1000000\n",
	  "t.yaml:18: native.idle_pause_us: 1000000 is out of range (0..100000)", NULL },
	{ "unknown congestion control",
	  NB NP "  cc: bbr\n",
	  "t.yaml:18: native.cc: invalid value 'bbr' (expected cubic, newreno)", NULL },
	{ "unknown key in a port",
	  NB NP "      speed: 10G\n",
	  "t.yaml:18: native.ports[0].speed: unknown key", NULL },
	{ "PCI off with a PCI port",
	  NB "native:\n  eal:\n    no_pci: true\n  ports:\n    - device: 0000:03:00.0\n"
	  "      ipv4: 192.0.2.10/24\n      ipv4_gateway: 192.0.2.1\n"
	  "      ipv6: 2001:db8:1::10/64\n      ipv6_gateway: fe80::1\n",
	  "t.yaml:13: native.eal.no_pci: a port is a PCI device", NULL },
	{ "hugepages off with too little memory",
	  NB "native:\n  eal:\n    hugepages: false\n    memory_mb: 16\n  ports:\n"
	  "    - device: net_tap0\n      ipv4: 192.0.2.10/24\n      ipv4_gateway: 192.0.2.1\n"
	  "      ipv6: 2001:db8:1::10/64\n      ipv6_gateway: fe80::1\n",
	  "t.yaml:14: native.eal.memory_mb: 16 is out of range (64..1048576)", NULL },
	{ "static neighbour with a bad MAC",
	  NB NP "  neighbours:\n    - address: 192.0.2.1\n      mac: 02:00:5e:00:53\n",
	  "t.yaml:20: native.neighbours[0].mac: '02:00:5e:00:53' is not a unicast MAC address", NULL },
	{ "static neighbour with a multicast MAC",
	  NB NP "  neighbours:\n    - address: 192.0.2.1\n      mac: 33:33:00:00:00:01\n",
	  "t.yaml:20: native.neighbours[0].mac: '33:33:00:00:00:01' is not a unicast MAC", NULL },
	{ "static neighbour with a bad address",
	  NB NP "  neighbours:\n    - address: 192.0.2.300\n      mac: 02:00:5e:00:53:01\n",
	  "t.yaml:19: native.neighbours[0].address: cannot parse '192.0.2.300'", NULL },
	{ "static neighbour with a prefix",
	  NB NP "  neighbours:\n    - address: 192.0.2.1/24\n      mac: 02:00:5e:00:53:01\n",
	  "t.yaml:19: native.neighbours[0].address: cannot parse '192.0.2.1/24'", NULL },
	{ "static neighbour off link",
	  NB NP "  neighbours:\n    - address: 203.0.113.1\n      mac: 02:00:5e:00:53:01\n",
	  "t.yaml:19: native.neighbours[0].address: '203.0.113.1' is on no native port's network", NULL },
	{ "static neighbour twice",
	  NB NP "  neighbours:\n    - address: 192.0.2.1\n      mac: 02:00:5e:00:53:01\n"
	  "    - address: 192.0.2.1\n      mac: 02:00:5e:00:53:02\n",
	  "t.yaml:21: native.neighbours[1].address: '192.0.2.1' is already native.neighbours[0] (line 19)",
	  NULL },
	{ "static neighbour without a MAC",
	  NB NP "  neighbours:\n    - address: 192.0.2.1\n",
	  "t.yaml:19: native.neighbours[0]: missing required key 'mac'", NULL },
	{ "max_conns too small",
	  NB NP "  max_conns: 8\n",
	  "t.yaml:18: native.max_conns: 8 is out of range (16..4194304)", NULL },
	{ "no ports",
	  NB "native:\n  idle_polls: 5\n",
	  "t.yaml:12: native: missing required key 'ports'", NULL },
};

/* Every broken native section: rejected with file, line and key. */
static void test_native_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(native_bad_cases) / sizeof(native_bad_cases[0]); i++) {
		const struct bad_case *t = &native_bad_cases[i];
		struct cfg *c = (struct cfg *)&c;
		char err[512] = "";
		int rc;

		rc = cfg_load_string(t->yaml, strlen(t->yaml), "t.yaml", &c, err, sizeof(err));
		if (rc != -EINVAL || strncmp(err, t->prefix, strlen(t->prefix)))
			fail_msg("%s: rc %d, got\n    %s\nwant prefix\n    %s", t->what, rc, err,
				 t->prefix);
		assert_null(c);
	}
}

/* cfg_parse_addr: the accepted forms and the errors. */
static void test_parse_addr(void **state)
{
	(void)state;
	static const struct { const char *s; int rc; int family; } cases[] = {
		{ "127.0.0.1:25",     0,       AF_INET },
		{ "[::1]:25",         0,       AF_INET6 },
		{ "[2001:db8::1]:587", 0,      AF_INET6 },
		{ "localhost:25",     0,       -1 },
		{ "127.0.0.1",        -EINVAL, 0 },
		{ "127.0.0.1:",       -EINVAL, 0 },
		{ ":25",              -EINVAL, 0 },
		{ "127.0.0.1:2x",     -EINVAL, 0 },
		{ "::1:25",           -EINVAL, 0 },
		{ "[::1]25",          -EINVAL, 0 },
		{ "[localhost]:25",   -EINVAL, 0 },
		{ "127.0.0.1:0",      -ERANGE, 0 },
		{ "127.0.0.1:65536",  -ERANGE, 0 },
	};
	struct sockaddr_storage ss;
	socklen_t len;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = cfg_parse_addr(cases[i].s, &ss, &len);

		if (rc != cases[i].rc)
			fail_msg("%s: rc %d, want %d", cases[i].s, rc, cases[i].rc);
		if (rc == 0 && cases[i].family > 0)
			assert_int_equal(ss.ss_family, cases[i].family);
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mail_front),
		cmocka_unit_test(test_quickstart),
		cmocka_unit_test(test_embedded_default),
		cmocka_unit_test(test_defaults_and_overrides),
		cmocka_unit_test(test_workers),
		cmocka_unit_test(test_quirk_actions),
		cmocka_unit_test(test_detect_implicit_defaults),
		cmocka_unit_test(test_metrics_addr),
		cmocka_unit_test(test_backend_tls),
		cmocka_unit_test(test_ftp),
		cmocka_unit_test(test_ftp_proxy_default),
		cmocka_unit_test(test_ftp_bad),
		cmocka_unit_test(test_bad_documents),
		cmocka_unit_test(test_bad_file),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_native),
		cmocka_unit_test(test_native_bad),
	};

	if (argc > 1)
		examples_dir = argv[1];
	else if (getenv("SLUICE_EXAMPLES"))
		examples_dir = getenv("SLUICE_EXAMPLES");
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
