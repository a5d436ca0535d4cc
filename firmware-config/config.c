/*
 * sluice configuration loader.
 *
 * The libcyaml schema below is the single source of truth for the file
 * format: which keys exist, their types, which are required, the names of
 * enum values. libcyaml 1.3.1 checks the structure; it reports the failing
 * key only as a backtrace through its log function, with no reliable line
 * (an unknown key gets the mapping's mark, a missing key the previous
 * field's). So the document is first walked with libyaml events to record,
 * for every key path ("listeners[1].tls"), the line of the key and of its
 * value (config_lines.c); libcyaml's backtrace is turned into such a path
 * and the line comes from that index (config_errors.c). The semantic checks
 * after loading (ranges, addresses, cross-references) use the same index,
 * and so do the `line` fields the rest of sluice uses for its own messages.
 */
#include "config.h"
#include "config_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cyaml/cyaml.h>

#define CFG_FILE_MAX  (1u << 20)  /* a bigger "configuration" is a mistake */

/* ---- schema -------------------------------------------------------------- */

/* Value names as written in the file; cfg_*_name() read the same tables. */
static const cyaml_strval_t cfg_proto_strs[] = {
#define P(e, name, ops) { name, CFG_PROTO_##e },
#include "proto/proto.def"
#undef P
};
static const cyaml_strval_t cfg_tls_strs[] = {
	{ "off", CFG_TLS_OFF }, { "starttls", CFG_TLS_STARTTLS },
	{ "required", CFG_TLS_REQUIRED }, { "implicit", CFG_TLS_IMPLICIT },
};
static const cyaml_strval_t cfg_proxy_strs[] = {
	{ "v2", CFG_PROXY_V2 }, { "v1", CFG_PROXY_V1 }, { "none", CFG_PROXY_NONE },
};
static const cyaml_strval_t cfg_be_tls_strs[] = {
	{ "off", CFG_BE_TLS_OFF }, { "on", CFG_BE_TLS_ON }, { "required", CFG_BE_TLS_REQUIRED },
};
static const cyaml_strval_t cfg_be_tls_mode_strs[] = {
	{ "starttls", CFG_BE_TLS_STARTTLS }, { "implicit", CFG_BE_TLS_IMPLICIT },
};
static const cyaml_strval_t cfg_tls_version_strs[] = {
	{ "TLSv1", CFG_TLS_V1_0 }, { "TLSv1.1", CFG_TLS_V1_1 },
	{ "TLSv1.2", CFG_TLS_V1_2 }, { "TLSv1.3", CFG_TLS_V1_3 },
};
static const cyaml_strval_t cfg_log_strs[] = {
	{ "stderr", CFG_LOG_STDERR }, { "syslog", CFG_LOG_SYSLOG },
};
static const cyaml_strval_t cfg_policy_strs[] = {
	{ "modern", CFG_POLICY_MODERN }, { "intermediate", CFG_POLICY_INTERMEDIATE },
	{ "legacy", CFG_POLICY_LEGACY },
};
static const cyaml_strval_t cfg_quirk_strs[] = {
	{ "allow", CFG_QUIRK_ALLOW }, { "close", CFG_QUIRK_CLOSE },
};

#define OPT   CYAML_FLAG_OPTIONAL
#define PTR   CYAML_FLAG_POINTER
#define ENUMF CYAML_FLAG_STRICT /* names only, no numbers */
#define STR(key, flags, st, m) \
	CYAML_FIELD_STRING_PTR(key, (flags) | PTR, st, m, 1, CFG_STR_MAX)
#define ENUM(key, flags, st, m, tab) \
	CYAML_FIELD_ENUM(key, (flags) | ENUMF, st, m, tab, CYAML_ARRAY_LEN(tab))

static const cyaml_schema_field_t cfg_timeouts_fields[] = {
	CYAML_FIELD_UINT("plaintext", OPT, struct cfg_timeouts, plaintext),
	CYAML_FIELD_UINT("handshake", OPT, struct cfg_timeouts, handshake),
	CYAML_FIELD_UINT("idle", OPT, struct cfg_timeouts, idle),
	CYAML_FIELD_UINT("plaintext_deadline", OPT, struct cfg_timeouts, plaintext_deadline),
	CYAML_FIELD_END
};

/* quirks: one key per switchable quirk of the table (quirk.def). */
#define CFG_QUIRK_FIELD_ALLOW(n) \
	ENUM(#n, OPT, struct cfg_quirks, action[CFG_QUIRK_##n], cfg_quirk_strs),
#define CFG_QUIRK_FIELD_CLOSE(n) CFG_QUIRK_FIELD_ALLOW(n)
#define CFG_QUIRK_FIELD_FIXED(n)
static const cyaml_schema_field_t cfg_quirks_fields[] = {
#define Q(n, w, act, why, h) CFG_QUIRK_FIELD_##act(n)
#include "quirk/quirk.def"
#undef Q
	CYAML_FIELD_END
};
#undef CFG_QUIRK_FIELD_ALLOW
#undef CFG_QUIRK_FIELD_CLOSE
#undef CFG_QUIRK_FIELD_FIXED

/* Each quirk's key and default action, from the table. */
static const char *const cfg_quirk_keys[CFG_QUIRK__COUNT] = {
#define Q(n, w, act, why, h) #n,
#include "quirk/quirk.def"
#undef Q
};
static const enum cfg_quirk_action cfg_quirk_defaults[CFG_QUIRK__COUNT] = {
#define Q(n, w, act, why, h) CFG_QUIRK_##act,
#include "quirk/quirk.def"
#undef Q
};

static const cyaml_schema_field_t cfg_cert_fields[] = {
	STR("cert", 0, struct cfg_cert, cert),
	STR("key", 0, struct cfg_cert, key),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t cfg_cert_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct cfg_cert, cfg_cert_fields),
};

static const cyaml_schema_value_t cfg_string_schema = {
	CYAML_VALUE_STRING(PTR, char, 1, CFG_STR_MAX),
};

static const cyaml_schema_field_t cfg_cert_set_fields[] = {
	STR("name", 0, struct cfg_cert_set, name),
	CYAML_FIELD_SEQUENCE_COUNT("names", OPT | PTR, struct cfg_cert_set, names, n_names,
				   &cfg_string_schema, 0, CFG_NAMES_MAX),
	CYAML_FIELD_SEQUENCE_COUNT("prefer", OPT | PTR, struct cfg_cert_set, prefer, n_prefer,
				   &cfg_string_schema, 0, 4),
	CYAML_FIELD_SEQUENCE_COUNT("certs", PTR, struct cfg_cert_set, certs, n_certs,
				   &cfg_cert_schema, 1, CFG_CERTS_MAX),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t cfg_cert_set_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct cfg_cert_set, cfg_cert_set_fields),
};

static const cyaml_schema_field_t cfg_policy_rule_fields[] = {
	CYAML_FIELD_SEQUENCE_COUNT("networks", PTR, struct cfg_policy_rule, networks, n_networks,
				   &cfg_string_schema, 1, CFG_NETS_MAX),
	ENUM("policy", 0, struct cfg_policy_rule, policy, cfg_policy_strs),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t cfg_policy_rule_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct cfg_policy_rule, cfg_policy_rule_fields),
};

static const cyaml_schema_field_t cfg_tickets_fields[] = {
	CYAML_FIELD_BOOL("enabled", OPT, struct cfg_tickets, enabled),
	STR("key_file", OPT, struct cfg_tickets, key_file),
	CYAML_FIELD_UINT("rotate", OPT, struct cfg_tickets, rotate),
	CYAML_FIELD_UINT("lifetime", OPT, struct cfg_tickets, lifetime),
	STR("export", OPT, struct cfg_tickets, export_file),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t cfg_backend_fields[] = {
	STR("name", 0, struct cfg_backend, name),
	ENUM("protocol", 0, struct cfg_backend, protocol, cfg_proto_strs),
	ENUM("proxy", OPT, struct cfg_backend, proxy, cfg_proxy_strs),
	CYAML_FIELD_SEQUENCE_COUNT("servers", PTR, struct cfg_backend, servers,
				   n_servers, &cfg_string_schema, 1, CFG_SERVERS_MAX),
	CYAML_FIELD_UINT("connect_timeout", OPT, struct cfg_backend, connect_timeout),
	CYAML_FIELD_UINT("health_interval", OPT, struct cfg_backend, health_interval),
	/* TLS to the backend: checked in config_backend_tls.c */
	ENUM("tls", OPT, struct cfg_backend, tls.tls, cfg_be_tls_strs),
	ENUM("tls_mode", OPT, struct cfg_backend, tls.mode, cfg_be_tls_mode_strs),
	STR("server_name", OPT, struct cfg_backend, tls.server_name),
	STR("ca_file", OPT, struct cfg_backend, tls.ca_file),
	STR("pin_sha256", OPT, struct cfg_backend, tls.pin_sha256),
	STR("client_cert", OPT, struct cfg_backend, tls.client_cert),
	STR("client_key", OPT, struct cfg_backend, tls.client_key),
	ENUM("min_version", OPT, struct cfg_backend, tls.min_version, cfg_tls_version_strs),
	CYAML_FIELD_UINT("fallback_memory", OPT, struct cfg_backend, tls.fallback_memory),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t cfg_backend_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct cfg_backend, cfg_backend_fields),
};

static const cyaml_schema_field_t cfg_listener_fields[] = {
	STR("name", 0, struct cfg_listener, name),
	STR("address", 0, struct cfg_listener, address),
	ENUM("protocol", 0, struct cfg_listener, protocol, cfg_proto_strs),
	ENUM("tls", 0, struct cfg_listener, tls, cfg_tls_strs),
	STR("backend", 0, struct cfg_listener, backend),
	STR("hostname", OPT, struct cfg_listener, hostname),
	CYAML_FIELD_SEQUENCE_COUNT("certs", OPT | PTR, struct cfg_listener, certs,
				   n_certs, &cfg_cert_schema, 0, CFG_CERTS_MAX),
	CYAML_FIELD_SEQUENCE_COUNT("cert_sets", OPT | PTR, struct cfg_listener, cert_sets,
				   n_cert_sets, &cfg_string_schema, 1, CFG_CERT_SETS_MAX),
	ENUM("policy", OPT, struct cfg_listener, policy, cfg_policy_strs),
	CYAML_FIELD_SEQUENCE_COUNT("policy_by_network", OPT | PTR, struct cfg_listener,
				   policy_by_network, n_policy_rules, &cfg_policy_rule_schema,
				   1, CFG_RULES_MAX),
	CYAML_FIELD_MAPPING("timeouts", OPT, struct cfg_listener, timeouts,
			    cfg_timeouts_fields),
	CYAML_FIELD_UINT("detect_implicit_ms", OPT, struct cfg_listener, detect_implicit_ms),
	CYAML_FIELD_BOOL("trace_header", OPT, struct cfg_listener, trace_header),
	CYAML_FIELD_MAPPING("ftp", OPT, struct cfg_listener, ftp, cfg_ftp_fields),
	CYAML_FIELD_MAPPING("quirks", OPT, struct cfg_listener, quirks, cfg_quirks_fields),
	CYAML_FIELD_MAPPING("limits", OPT, struct cfg_listener, limits, cfg_addr_limits_fields),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t cfg_listener_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct cfg_listener, cfg_listener_fields),
};

static const cyaml_schema_field_t cfg_control_fields[] = {
	STR("socket", OPT, struct cfg_control, socket),
	STR("dataplane_socket", OPT, struct cfg_control, dataplane_socket),
	STR("admin_group", OPT, struct cfg_control, admin_group),
	CYAML_FIELD_UINT("drain_deadline", OPT, struct cfg_control, drain_deadline),
	CYAML_FIELD_UINT("drain_grace", OPT, struct cfg_control, drain_grace),
	CYAML_FIELD_UINT("cert_margin_days", OPT, struct cfg_control, cert_margin_days),
	CYAML_FIELD_UINT("fingerprint_window", OPT, struct cfg_control, fingerprint_window),
	CYAML_FIELD_UINT("ticket_keys", OPT, struct cfg_control, ticket_keys),
	STR("metrics", OPT, struct cfg_control, metrics),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t cfg_fields[] = {
	STR("hostname", OPT, struct cfg, hostname),
	STR("user", OPT, struct cfg, user),
	CYAML_FIELD_BOOL("run_as_root", OPT, struct cfg, run_as_root),
	CYAML_FIELD_UINT("cores", OPT, struct cfg, cores),
	CYAML_FIELD_UINT("workers", OPT, struct cfg, workers),
	ENUM("log", OPT, struct cfg, log_target, cfg_log_strs),
	CYAML_FIELD_MAPPING("timeouts", OPT, struct cfg, timeouts, cfg_timeouts_fields),
	CYAML_FIELD_SEQUENCE_COUNT("backends", PTR, struct cfg, backends, n_backends,
				   &cfg_backend_schema, 1, CFG_BACKENDS_MAX),
	CYAML_FIELD_SEQUENCE_COUNT("listeners", PTR, struct cfg, listeners, n_listeners,
				   &cfg_listener_schema, 1, CFG_LISTENERS_MAX),
	CYAML_FIELD_SEQUENCE_COUNT("cert_sets", OPT | PTR, struct cfg, cert_sets, n_cert_sets,
				   &cfg_cert_set_schema, 1, CFG_CERT_SETS_MAX),
	CYAML_FIELD_MAPPING("tickets", OPT, struct cfg, tickets, cfg_tickets_fields),
	CYAML_FIELD_UINT("session_cache", OPT, struct cfg, session_cache),
	CYAML_FIELD_MAPPING_PTR("native", OPT, struct cfg, native, cfg_native_fields),
	CYAML_FIELD_MAPPING("control", OPT, struct cfg, control, cfg_control_fields),
	CYAML_FIELD_MAPPING("limits", OPT, struct cfg, limits, cfg_limits_fields),
	CYAML_FIELD_END
};
const cyaml_schema_value_t cfg_schema = {
	CYAML_VALUE_MAPPING(PTR, struct cfg, cfg_fields),
};
/* cyaml_config.mem_fn: plain realloc/free, as the defaults we strdup() use. */
static void *cfg_cyaml_mem(void *ctx, void *ptr, size_t size)
{
	(void)ctx;
	if (size == 0) {
		free(ptr);
		return NULL;
	}
	return realloc(ptr, size);
}

static const cyaml_config_t cfg_cyaml_free_cfg = { .mem_fn = cfg_cyaml_mem };

#undef OPT
#undef PTR
#undef ENUMF
#undef STR
#undef ENUM

/* Numeric ranges, checked after loading (libcyaml 1.3 has no range checks). */
#define CFG_CORES_MAX     64
#define CFG_TIMEOUT_MAX   86400

/* ---- semantic checks and defaults ---------------------------------------- */

/* Check lo <= *v <= hi, or apply def if path is absent; 0 or -EINVAL. */
int cfg_uint(struct cfg_ld *ld, const char *path, unsigned *v, unsigned def,
		    unsigned lo, unsigned hi)
{
	if (!cfg_present(ld, path))
		*v = def;
	else if (*v < lo || *v > hi)
		return cfg_err(ld, path, "%u is out of range (%u..%u)", *v, lo, hi);
	return 0;
}

/* Check a timeouts block at prefix; a listener's (inherit set) may hold 0s. */
static int cfg_timeouts(struct cfg_ld *ld, const char *prefix, struct cfg_timeouts *t,
			const struct cfg_timeouts *inherit)
{
	static const struct cfg_timeouts def = { 300, 60, 600, 120 };
	const struct cfg_timeouts *d = inherit ? inherit : &def;
	unsigned *v[] = { &t->plaintext, &t->handshake, &t->idle, &t->plaintext_deadline };
	const unsigned dv[] = { d->plaintext, d->handshake, d->idle, d->plaintext_deadline };
	char p[CFG_PATH_MAX];
	int rc;

	for (unsigned i = 0; cfg_timeouts_fields[i].key; i++) {
		snprintf(p, sizeof(p), "%s.%s", prefix, cfg_timeouts_fields[i].key);
		rc = cfg_uint(ld, p, v[i], dv[i], inherit ? 0 : 1, CFG_TIMEOUT_MAX);
		if (rc)
			return rc;
		if (!*v[i])
			*v[i] = dv[i];
	}
	return 0;
}

/*
 * control.metrics: "off", or a numeric address and port ("127.0.0.1:9925",
 * "[::1]:9925"). No host names: sluice-control binds it at start, and a
 * name's address may change under it or need a DNS answer first.
 */
static int cfg_check_metrics(struct cfg_ld *ld, struct cfg_control *k)
{
	static const char path[] = "control.metrics";
	const char *s, *c;
	char host[64];
	unsigned char a[16];
	size_t hlen;

	if (!k->metrics && !(k->metrics = strdup("127.0.0.1:9925")))
		return cfg_oom(ld);
	s = k->metrics;
	k->metrics_on = strcmp(s, "off") != 0;
	if (!k->metrics_on)
		return 0;
	/* The host part alone, to refuse names before cfg_parse_addr would
	 * look them up. */
	if (s[0] == '[')
		c = strchr(s, ']');
	else
		c = strrchr(s, ':');
	hlen = c ? (size_t)(c - s) - (s[0] == '[') : 0;
	if (!c || !hlen || hlen >= sizeof(host))
		return cfg_err(ld, path, "cannot parse '%s' (expected IPv4:PORT, [IPv6]:PORT or off)",
			       s);
	memcpy(host, s + (s[0] == '['), hlen);
	host[hlen] = 0;
	if (inet_pton(s[0] == '[' ? AF_INET6 : AF_INET, host, a) != 1)
		return cfg_err(ld, path, "'%s' is not a numeric %s address (expected IPv4:PORT, "
			       "[IPv6]:PORT or off)", host, s[0] == '[' ? "IPv6" : "IPv4");
	return cfg_addr_at(ld, path, s, &k->metrics_addr, &k->metrics_len);
}

/* The control: block: defaults, ranges, the admin group known. */
static int cfg_check_control(struct cfg_ld *ld, struct cfg_control *k)
{
	int rc;

	if (!k->socket && !(k->socket = strdup("/run/sluice/control.sock")))
		return cfg_oom(ld);
	if (!k->dataplane_socket && !(k->dataplane_socket = strdup("/run/sluice/dataplane.sock")))
		return cfg_oom(ld);
	if (k->socket[0] != '/')
		return cfg_err(ld, "control.socket", "'%s' is not an absolute path", k->socket);
	if (k->dataplane_socket[0] != '/')
		return cfg_err(ld, "control.dataplane_socket", "'%s' is not an absolute path",
			       k->dataplane_socket);
	if (!strcmp(k->socket, k->dataplane_socket))
		return cfg_err(ld, "control.dataplane_socket", "the same path as control.socket");
	if (k->admin_group && !getgrnam(k->admin_group))
		return cfg_err(ld, "control.admin_group", "no such group '%s'", k->admin_group);
	if ((rc = cfg_uint(ld, "control.drain_deadline", &k->drain_deadline, 60, 1, 86400)) ||
	    (rc = cfg_uint(ld, "control.drain_grace", &k->drain_grace, 0, 0, 3600)) ||
	    (rc = cfg_uint(ld, "control.cert_margin_days", &k->cert_margin_days, 14, 0, 365)) ||
	    (rc = cfg_uint(ld, "control.fingerprint_window", &k->fingerprint_window, 86400, 60,
			   30 * 86400)) ||
	    (rc = cfg_uint(ld, "control.ticket_keys", &k->ticket_keys, 3, 2, 8)))
		return rc;
	return cfg_check_metrics(ld, k);
}

/*
 * The name sluice greets and answers EHLO with (RFC 5321 2.3.5, RFC 1123
 * 2.1): dot-separated labels of letters, digits and inner hyphens, 1..63
 * bytes each, at most CFG_HOSTNAME_MAX bytes in all. It reaches the wire
 * in every banner, so CR/LF or a name longer than a reply line allows
 * must never load.
 */
static bool cfg_hostname_ok(const char *n)
{
	size_t len = strlen(n), label = 0;

	if (!len || len > CFG_HOSTNAME_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char ch = n[i];

		if (ch == '.' || ch == '\0') {
			if (!label || n[i - 1] == '-')
				return false;
			label = 0;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			   (ch >= '0' && ch <= '9') || (ch == '-' && label)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return true;
}

static int cfg_hostname_err(struct cfg_ld *ld, const char *path, const char *n)
{
	return cfg_err(ld, path, "not a valid host name (%zu bytes; expected labels of "
		       "letters, digits and inner hyphens, 1..63 bytes each, separated by "
		       "dots, at most %u bytes in all, e.g. mx1.example.org)",
		       strlen(n), CFG_HOSTNAME_MAX);
}

/* Top-level scalars: defaults and ranges. */
static int cfg_check_global(struct cfg_ld *ld, struct cfg *c)
{
	char host[HOST_NAME_MAX + 1] = "";
	int rc;

	if (!c->hostname) {
		if (gethostname(host, sizeof(host) - 1) < 0 || !cfg_hostname_ok(host))
			snprintf(host, sizeof(host), "localhost");
		if (!(c->hostname = strdup(host)))
			return cfg_oom(ld);
	} else if (!cfg_hostname_ok(c->hostname)) {
		return cfg_hostname_err(ld, "hostname", c->hostname);
	}
	if (c->user && !getpwnam(c->user))
		return cfg_err(ld, "user", "no such user '%s'", c->user);
	if ((rc = cfg_uint(ld, "cores", &c->cores, 1, 1, CFG_CORES_MAX)) ||
	    (rc = cfg_uint(ld, "workers", &c->workers, 1, 0, CFG_CORES_MAX)) ||
	    (rc = cfg_uint(ld, "session_cache", &c->session_cache, 20480, 0, 10000000)) ||
	    (rc = cfg_uint(ld, "tickets.rotate", &c->tickets.rotate, 3600, 60, 7 * 86400)) ||
	    /* RFC 8446 4.6.1: no ticket lives longer than seven days */
	    (rc = cfg_uint(ld, "tickets.lifetime", &c->tickets.lifetime, 7200, 60, 7 * 86400)))
		return rc;
	if (!cfg_present(ld, "tickets.enabled"))
		c->tickets.enabled = true;
	c->tickets.key_file_line = cfg_line(ld, "tickets.key_file", false, false);
	if (c->tickets.key_file && cfg_present(ld, "tickets.rotate"))
		return cfg_err(ld, "tickets.rotate", "not with tickets.key_file: the key "
			       "file's keys are used, in its order, and it is re-read when it changes");
	if (c->tickets.export_file && c->tickets.key_file)
		return cfg_err(ld, "tickets.export", "not with tickets.key_file: this box reads "
			       "its keys; export them from the box whose sluice-control makes them");
	if (c->tickets.export_file && !c->tickets.enabled)
		return cfg_err(ld, "tickets.export", "not with tickets.enabled: false");
	if (c->tickets.export_file && c->tickets.export_file[0] != '/')
		return cfg_err(ld, "tickets.export", "'%s' is not an absolute path",
			       c->tickets.export_file);
	if ((rc = cfg_check_control(ld, &c->control)) || (rc = cfg_check_limits(ld, c)))
		return rc;
	return cfg_timeouts(ld, "timeouts", &c->timeouts, NULL);
}

/* Backend i: unique name, defaults, ranges, resolved servers. */
static int cfg_check_backend(struct cfg_ld *ld, struct cfg *c, unsigned i)
{
	struct cfg_backend *b = &c->backends[i];
	char p[CFG_PATH_MAX];
	int rc;

	snprintf(p, sizeof(p), "backends[%u]", i);
	b->line = cfg_line(ld, p, false, false);
	snprintf(p, sizeof(p), "backends[%u].name", i);
	for (unsigned j = 0; j < i; j++)
		if (!strcmp(c->backends[j].name, b->name))
			return cfg_err(ld, p, "duplicate backend name '%s' (first at line %u)",
				       b->name, c->backends[j].line);
	snprintf(p, sizeof(p), "backends[%u].proxy", i);
	if (!cfg_present(ld, p))
		/* FTP servers of note read no PROXY header (ProFTPD's
		 * mod_proxy_protocol does: proxy: v2 for it) */
		b->proxy = b->protocol == CFG_PROTO_FTP ? CFG_PROXY_NONE : CFG_PROXY_V2;
	snprintf(p, sizeof(p), "backends[%u].connect_timeout", i);
	if ((rc = cfg_uint(ld, p, &b->connect_timeout, 5, 1, 300)))
		return rc;
	snprintf(p, sizeof(p), "backends[%u].health_interval", i);
	if ((rc = cfg_uint(ld, p, &b->health_interval, 10, 1, 3600)) ||
	    (rc = cfg_check_backend_tls(ld, c, i)))
		return rc;

	b->addrs = calloc(b->n_servers, sizeof(*b->addrs));
	b->addrlens = calloc(b->n_servers, sizeof(*b->addrlens));
	if (!b->addrs || !b->addrlens)
		return cfg_oom(ld);
	for (unsigned j = 0; j < b->n_servers; j++) {
		snprintf(p, sizeof(p), "backends[%u].servers[%u]", i, j);
		if ((rc = cfg_addr_at(ld, p, b->servers[j], &b->addrs[j], &b->addrlens[j])))
			return rc;
	}
	return 0;
}

/* Listener i: unique name and address, backend link, defaults, cert lines. */
static int cfg_check_listener(struct cfg_ld *ld, struct cfg *c, unsigned i)
{
	struct cfg_listener *l = &c->listeners[i];
	char p[CFG_PATH_MAX];
	int rc;

	snprintf(p, sizeof(p), "listeners[%u]", i);
	l->line = cfg_line(ld, p, false, false);
	snprintf(p, sizeof(p), "listeners[%u].name", i);
	for (unsigned j = 0; j < i; j++)
		if (!strcmp(c->listeners[j].name, l->name))
			return cfg_err(ld, p, "duplicate listener name '%s' (first at line %u)",
				       l->name, c->listeners[j].line);
	snprintf(p, sizeof(p), "listeners[%u].address", i);
	if ((rc = cfg_addr_at(ld, p, l->address, &l->addr, &l->addrlen)))
		return rc;
	for (unsigned j = 0; j < i; j++)
		if (cfg_addr_equal(&c->listeners[j].addr, &l->addr))
			return cfg_err(ld, p, "address '%s' already used by listeners[%u] (line %u)",
				       l->address, j, c->listeners[j].line);

	snprintf(p, sizeof(p), "listeners[%u].backend", i);
	for (unsigned j = 0; j < c->n_backends && !l->be; j++)
		if (!strcmp(c->backends[j].name, l->backend))
			l->be = &c->backends[j];
	if (!l->be)
		return cfg_err(ld, p, "no backend named '%s'", l->backend);
	if (l->be->protocol != l->protocol)
		return cfg_err(ld, p, "backend '%s' speaks %s, not %s", l->backend,
			       cfg_proto_name(l->be->protocol), cfg_proto_name(l->protocol));

	snprintf(p, sizeof(p), "listeners[%u].hostname", i);
	if (l->hostname && !cfg_hostname_ok(l->hostname))
		return cfg_hostname_err(ld, p, l->hostname);
	if (!l->hostname && !(l->hostname = strdup(c->hostname)))
		return cfg_oom(ld);
	for (unsigned j = 0; j < l->n_certs; j++) {
		snprintf(p, sizeof(p), "listeners[%u].certs[%u]", i, j);
		l->certs[j].line = cfg_line(ld, p, false, false);
	}
	for (unsigned q = 0; q < CFG_QUIRK__COUNT; q++) {
		snprintf(p, sizeof(p), "listeners[%u].quirks.%s", i, cfg_quirk_keys[q]);
		if (cfg_quirk_defaults[q] == CFG_QUIRK_FIXED || !cfg_present(ld, p))
			l->quirks.action[q] = cfg_quirk_defaults[q];
	}
	/* On by default where plaintext gets nothing anyway (required): a
	 * submission port that iOS Mail may reach with TLS first. Port 25
	 * (starttls) greets at once: senders that wait for the banner are
	 * many, TLS-first senders none. */
	snprintf(p, sizeof(p), "listeners[%u].detect_implicit_ms", i);
	if ((rc = cfg_uint(ld, p, &l->detect_implicit_ms,
			   l->tls == CFG_TLS_REQUIRED ? CFG_DETECT_IMPLICIT_MS : 0, 0,
			   CFG_DETECT_IMPLICIT_MAX_MS)))
		return rc;
	if (l->detect_implicit_ms && l->tls != CFG_TLS_STARTTLS && l->tls != CFG_TLS_REQUIRED)
		return cfg_err(ld, p, "only for a listener with tls: starttls or required");
	snprintf(p, sizeof(p), "listeners[%u].trace_header", i);
	if (l->trace_header && l->protocol != CFG_PROTO_SMTP)
		return cfg_err(ld, p, "only for protocol smtp (a Received: line is SMTP's)");
	if ((rc = cfg_check_listener_tls(ld, c, i)))
		return rc;
	if ((rc = cfg_check_listener_ftp(ld, c, i)))
		return rc;
	if ((rc = cfg_check_listener_limits(ld, c, i)))
		return rc;
	snprintf(p, sizeof(p), "listeners[%u].timeouts", i);
	return cfg_timeouts(ld, p, &l->timeouts, &c->timeouts);
}

/* ---- entry points -------------------------------------------------------- */


int cfg_load_string(const char *yaml, size_t len, const char *name,
		    struct cfg **out, char *err, size_t errlen)
{
	struct cfg_ld ld = { .name = name ? name : "<config>", .err = err, .errlen = errlen };
	const cyaml_config_t cy = {
		.log_fn = cfg_cyaml_log, .log_ctx = &ld,
		.mem_fn = cfg_cyaml_mem, .log_level = CYAML_LOG_ERROR,
		/* No aliases: the line index refuses them first, with their line
		 * (an alias bomb expands a few KiB into GiB); this is the second
		 * lock. */
		.flags = CYAML_CFG_NO_ALIAS,
	};
	struct cfg *c = NULL;
	cyaml_err_t e;
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if ((rc = cfg_index(&ld, yaml, len)))
		goto fail;
	e = cyaml_load_data((const uint8_t *)yaml, len, &cy, &cfg_schema, (void **)&c, NULL);
	if (e != CYAML_OK) {
		rc = cfg_cyaml_fail(&ld, e);
		c = NULL;
		goto fail;
	}
	if (!c) {
		rc = cfg_fail(&ld, -EINVAL, 1, NULL, "empty configuration (expected a mapping)");
		goto fail;
	}
	/* Fields outside the schema: make them safe for cfg_free first. */
	c->path = NULL;
	c->limits.exempt_nets = NULL;
	for (unsigned i = 0; i < c->n_backends; i++) {
		c->backends[i].addrs = NULL;
		c->backends[i].addrlens = NULL;
	}
	for (unsigned i = 0; i < c->n_listeners; i++) {
		c->listeners[i].be = NULL;
		c->listeners[i].sets = NULL;
		for (unsigned j = 0; j < c->listeners[i].n_policy_rules; j++)
			c->listeners[i].policy_by_network[j].nets = NULL;
	}
	if (!(c->path = strdup(ld.name))) {
		rc = cfg_oom(&ld);
		goto fail;
	}
	if ((rc = cfg_check_global(&ld, c)))
		goto fail;
	for (unsigned i = 0; i < c->n_backends; i++)
		if ((rc = cfg_check_backend(&ld, c, i)))
			goto fail;
	for (unsigned i = 0; i < c->n_cert_sets; i++)
		if ((rc = cfg_check_cert_set(&ld, c, i)))
			goto fail;
	for (unsigned i = 0; i < c->n_listeners; i++)
		if ((rc = cfg_check_listener(&ld, c, i)))
			goto fail;
	if (c->native && (rc = cfg_check_native(&ld, c)))
		goto fail;
	*out = c;
	c = NULL;
	rc = 0;
fail:
	cfg_free(c);
	cfg_index_free(&ld);
	return rc;
}

int cfg_load_file(const char *path, struct cfg **out, char *err, size_t errlen)
{
	struct cfg_ld ld = { .name = path, .err = err, .errlen = errlen };
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int rc;

	*out = NULL;
	f = fopen(path, "rb");
	if (!f) {
		rc = errno;
		return cfg_fail(&ld, -rc, 0, NULL, "%s", strerror(rc));
	}
	buf = malloc(CFG_FILE_MAX + 1);
	if (!buf) {
		rc = cfg_oom(&ld);
		goto fail;
	}
	errno = 0;
	len = fread(buf, 1, CFG_FILE_MAX + 1, f);
	if (ferror(f)) {
		rc = errno ? errno : EIO;   /* EISDIR for a directory */
		rc = cfg_fail(&ld, -rc, 0, NULL, "%s", strerror(rc));
		goto fail;
	}
	if (len > CFG_FILE_MAX) {
		rc = cfg_fail(&ld, -EFBIG, 0, NULL, "file larger than %u bytes", CFG_FILE_MAX);
		goto fail;
	}
	rc = cfg_load_string(buf, len, path, out, err, errlen);
fail:
	free(buf);
	fclose(f);
	return rc;
}

/* Everything the schema describes goes back through cyaml_free; then the rest. */
void cfg_free(struct cfg *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->n_backends; i++) {
		free(c->backends[i].addrs);
		free(c->backends[i].addrlens);
	}
	for (unsigned i = 0; i < c->n_listeners; i++) {
		free(c->listeners[i].sets);
		for (unsigned j = 0; j < c->listeners[i].n_policy_rules; j++)
			free(c->listeners[i].policy_by_network[j].nets);
	}
	free(c->limits.exempt_nets);
	free(c->path);
	cyaml_free(&cfg_cyaml_free_cfg, &cfg_schema, c, 0);
}

/* Name of value v in an enum table, "?" if absent. */
static const char *cfg_strval(const cyaml_strval_t *t, size_t n, int64_t v)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].val == v)
			return t[i].str;
	return "?";
}

const char *cfg_proto_name(enum cfg_proto p)
{
	return cfg_strval(cfg_proto_strs, CYAML_ARRAY_LEN(cfg_proto_strs), p);
}

const char *cfg_tls_name(enum cfg_tls t)
{
	return cfg_strval(cfg_tls_strs, CYAML_ARRAY_LEN(cfg_tls_strs), t);
}

const char *cfg_be_tls_name(enum cfg_be_tls t)
{
	return cfg_strval(cfg_be_tls_strs, CYAML_ARRAY_LEN(cfg_be_tls_strs), t);
}

const char *cfg_tls_version_name(enum cfg_tls_version v)
{
	return cfg_strval(cfg_tls_version_strs, CYAML_ARRAY_LEN(cfg_tls_version_strs), v);
}

const char *cfg_policy_name(enum cfg_policy p)
{
	return cfg_strval(cfg_policy_strs, CYAML_ARRAY_LEN(cfg_policy_strs), p);
}

const char *cfg_proxy_name(enum cfg_proxy p)
{
	return cfg_strval(cfg_proxy_strs, CYAML_ARRAY_LEN(cfg_proxy_strs), p);
}

const char *cfg_quirk_key(enum cfg_quirk q)
{
	return (unsigned)q < CFG_QUIRK__COUNT ? cfg_quirk_keys[q] : "?";
}

const char *cfg_quirk_action_name(enum cfg_quirk_action a)
{
	return a == CFG_QUIRK_FIXED ? "fixed" :
	       cfg_strval(cfg_quirk_strs, CYAML_ARRAY_LEN(cfg_quirk_strs), a);
}
