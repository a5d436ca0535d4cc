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
 * value; libcyaml's backtrace is turned into such a path and the line comes
 * from that index. The semantic checks after loading (ranges, addresses,
 * cross-references) use the same index, and so do the `line` fields the
 * rest of sluice uses for its own messages.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* memmem */
#endif
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pwd.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cyaml/cyaml.h>
#include <yaml.h>

#define CFG_PATH_MAX  256
#define CFG_MSG_MAX   512
#define CFG_DEPTH_MAX 32        /* deeper nodes are not indexed */
#define CFG_BT_MAX    16
#define CFG_FILE_MAX  (1u << 20)  /* a bigger "configuration" is a mistake */

/* ---- schema -------------------------------------------------------------- */

/* Value names as written in the file; cfg_*_name() read the same tables. */
static const cyaml_strval_t cfg_proto_strs[] = {
	{ "smtp", CFG_PROTO_SMTP }, { "imap", CFG_PROTO_IMAP }, { "pop3", CFG_PROTO_POP3 },
};
static const cyaml_strval_t cfg_tls_strs[] = {
	{ "off", CFG_TLS_OFF }, { "starttls", CFG_TLS_STARTTLS },
	{ "required", CFG_TLS_REQUIRED }, { "implicit", CFG_TLS_IMPLICIT },
};
static const cyaml_strval_t cfg_proxy_strs[] = {
	{ "v2", CFG_PROXY_V2 }, { "v1", CFG_PROXY_V1 }, { "none", CFG_PROXY_NONE },
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
	CYAML_FIELD_STRING_PTR(key, (flags) | PTR, st, m, 1, CYAML_UNLIMITED)
#define ENUM(key, flags, st, m, tab) \
	CYAML_FIELD_ENUM(key, (flags) | ENUMF, st, m, tab, CYAML_ARRAY_LEN(tab))

static const cyaml_schema_field_t cfg_timeouts_fields[] = {
	CYAML_FIELD_UINT("plaintext", OPT, struct cfg_timeouts, plaintext),
	CYAML_FIELD_UINT("handshake", OPT, struct cfg_timeouts, handshake),
	CYAML_FIELD_UINT("idle", OPT, struct cfg_timeouts, idle),
	CYAML_FIELD_END
};

static const cyaml_schema_field_t cfg_quirks_fields[] = {
	ENUM("second_starttls", OPT, struct cfg_quirks, second_starttls, cfg_quirk_strs),
	ENUM("pipelined_starttls", OPT, struct cfg_quirks, pipelined_starttls, cfg_quirk_strs),
	ENUM("bare_lf", OPT, struct cfg_quirks, bare_lf, cfg_quirk_strs),
	ENUM("trailing_blanks", OPT, struct cfg_quirks, trailing_blanks, cfg_quirk_strs),
	ENUM("sslv2_hello", OPT, struct cfg_quirks, sslv2_hello, cfg_quirk_strs),
	ENUM("no_ems", OPT, struct cfg_quirks, no_ems, cfg_quirk_strs),
	CYAML_FIELD_END
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
	CYAML_VALUE_STRING(PTR, char, 1, CYAML_UNLIMITED),
};

static const cyaml_schema_field_t cfg_cert_set_fields[] = {
	STR("name", 0, struct cfg_cert_set, name),
	CYAML_FIELD_SEQUENCE_COUNT("names", OPT | PTR, struct cfg_cert_set, names, n_names,
				   &cfg_string_schema, 0, CYAML_UNLIMITED),
	CYAML_FIELD_SEQUENCE_COUNT("prefer", OPT | PTR, struct cfg_cert_set, prefer, n_prefer,
				   &cfg_string_schema, 0, CYAML_UNLIMITED),
	CYAML_FIELD_SEQUENCE_COUNT("certs", PTR, struct cfg_cert_set, certs, n_certs,
				   &cfg_cert_schema, 1, CYAML_UNLIMITED),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t cfg_cert_set_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct cfg_cert_set, cfg_cert_set_fields),
};

static const cyaml_schema_field_t cfg_policy_rule_fields[] = {
	CYAML_FIELD_SEQUENCE_COUNT("networks", PTR, struct cfg_policy_rule, networks, n_networks,
				   &cfg_string_schema, 1, CYAML_UNLIMITED),
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
	CYAML_FIELD_END
};

static const cyaml_schema_field_t cfg_backend_fields[] = {
	STR("name", 0, struct cfg_backend, name),
	ENUM("protocol", 0, struct cfg_backend, protocol, cfg_proto_strs),
	ENUM("proxy", OPT, struct cfg_backend, proxy, cfg_proxy_strs),
	CYAML_FIELD_SEQUENCE_COUNT("servers", PTR, struct cfg_backend, servers,
				   n_servers, &cfg_string_schema, 1, CYAML_UNLIMITED),
	CYAML_FIELD_UINT("connect_timeout", OPT, struct cfg_backend, connect_timeout),
	CYAML_FIELD_UINT("health_interval", OPT, struct cfg_backend, health_interval),
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
				   n_certs, &cfg_cert_schema, 0, CYAML_UNLIMITED),
	CYAML_FIELD_SEQUENCE_COUNT("cert_sets", OPT | PTR, struct cfg_listener, cert_sets,
				   n_cert_sets, &cfg_string_schema, 1, CYAML_UNLIMITED),
	ENUM("policy", OPT, struct cfg_listener, policy, cfg_policy_strs),
	CYAML_FIELD_SEQUENCE_COUNT("policy_by_network", OPT | PTR, struct cfg_listener,
				   policy_by_network, n_policy_rules, &cfg_policy_rule_schema,
				   1, CYAML_UNLIMITED),
	CYAML_FIELD_MAPPING("timeouts", OPT, struct cfg_listener, timeouts,
			    cfg_timeouts_fields),
	CYAML_FIELD_UINT("detect_implicit_ms", OPT, struct cfg_listener, detect_implicit_ms),
	CYAML_FIELD_MAPPING("quirks", OPT, struct cfg_listener, quirks, cfg_quirks_fields),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t cfg_listener_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct cfg_listener, cfg_listener_fields),
};

static const cyaml_schema_field_t cfg_fields[] = {
	STR("hostname", OPT, struct cfg, hostname),
	STR("user", OPT, struct cfg, user),
	CYAML_FIELD_UINT("cores", OPT, struct cfg, cores),
	CYAML_FIELD_UINT("workers", OPT, struct cfg, workers),
	ENUM("log", OPT, struct cfg, log_target, cfg_log_strs),
	CYAML_FIELD_MAPPING("timeouts", OPT, struct cfg, timeouts, cfg_timeouts_fields),
	CYAML_FIELD_SEQUENCE_COUNT("backends", PTR, struct cfg, backends, n_backends,
				   &cfg_backend_schema, 1, CYAML_UNLIMITED),
	CYAML_FIELD_SEQUENCE_COUNT("listeners", PTR, struct cfg, listeners, n_listeners,
				   &cfg_listener_schema, 1, CYAML_UNLIMITED),
	CYAML_FIELD_SEQUENCE_COUNT("cert_sets", OPT | PTR, struct cfg, cert_sets, n_cert_sets,
				   &cfg_cert_set_schema, 1, CYAML_UNLIMITED),
	CYAML_FIELD_MAPPING("tickets", OPT, struct cfg, tickets, cfg_tickets_fields),
	CYAML_FIELD_UINT("session_cache", OPT, struct cfg, session_cache),
	CYAML_FIELD_END
};
static const cyaml_schema_value_t cfg_schema = {
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

/* ---- load context -------------------------------------------------------- */

struct cfg_mark {
	char *path;             /* "listeners[1].tls"; "" is the document root */
	unsigned kline;         /* line of the key (of the entry, in a sequence) */
	unsigned vline;         /* line of the value */
};

enum cfg_bt_kind { CFG_BT_MAPPING, CFG_BT_FIELD, CFG_BT_ENTRY };

struct cfg_bt {                 /* one "  in ..." line of libcyaml's backtrace */
	enum cfg_bt_kind kind;
	unsigned entry;         /* CFG_BT_ENTRY: libcyaml's count, index + 1 */
	char field[64];
};

struct cfg_ld {
	const char *name;       /* file name for messages */
	char *err;
	size_t errlen;
	struct cfg_mark *marks; /* owned, freed at the end of the load */
	size_t n_marks, cap_marks;
	char msg[CFG_MSG_MAX];  /* first error libcyaml logged, "Load: " removed */
	struct cfg_bt bt[CFG_BT_MAX]; /* its backtrace, innermost first */
	unsigned n_bt;
	bool bt_open;
};

static unsigned cfg_line(const struct cfg_ld *ld, const char *path, bool key, bool last);

/* Write "NAME:LINE: PATH: reason" (no LINE if 0, no PATH if empty); returns rc. */
static int cfg_vfail(struct cfg_ld *ld, int rc, unsigned line, const char *path,
		     const char *fmt, va_list ap)
{
	int n;

	if (!ld->err || !ld->errlen)
		return rc;
	n = snprintf(ld->err, ld->errlen, "%s:", ld->name);
	if (line && n >= 0 && (size_t)n < ld->errlen)
		n += snprintf(ld->err + n, ld->errlen - n, "%u:", line);
	if (path && *path && n >= 0 && (size_t)n < ld->errlen)
		n += snprintf(ld->err + n, ld->errlen - n, " %s:", path);
	if (n >= 0 && (size_t)n + 1 < ld->errlen) {
		ld->err[n++] = ' ';
		vsnprintf(ld->err + n, ld->errlen - n, fmt, ap);
	}
	return rc;
}

/* cfg_vfail with the arguments inline; returns rc. */
static int cfg_fail(struct cfg_ld *ld, int rc, unsigned line, const char *path,
		    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cfg_vfail(ld, rc, line, path, fmt, ap);
	va_end(ap);
	return rc;
}

/* An error about the value at path, on its line; returns -EINVAL. */
static int cfg_err(struct cfg_ld *ld, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cfg_vfail(ld, -EINVAL, cfg_line(ld, path, false, false), path, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int cfg_oom(struct cfg_ld *ld)
{
	return cfg_fail(ld, -ENOMEM, 0, NULL, "out of memory");
}

/* ---- path -> line index, built from libyaml events ----------------------- */

/* Append a mark; returns its index or -ENOMEM. */
static int cfg_mark_add(struct cfg_ld *ld, const char *path, unsigned line)
{
	if (ld->n_marks == ld->cap_marks) {
		size_t cap = ld->cap_marks ? 2 * ld->cap_marks : 64;
		struct cfg_mark *m = realloc(ld->marks, cap * sizeof(*m));

		if (!m)
			return -ENOMEM;
		ld->marks = m;
		ld->cap_marks = cap;
	}
	ld->marks[ld->n_marks].path = strdup(path);
	if (!ld->marks[ld->n_marks].path)
		return -ENOMEM;
	ld->marks[ld->n_marks].kline = line;
	ld->marks[ld->n_marks].vline = line;
	return (int)ld->n_marks++;
}

/* The mark recorded for exactly this path (the last one if last), or NULL. */
static const struct cfg_mark *cfg_mark_find(const struct cfg_ld *ld, const char *path,
					    bool last)
{
	const struct cfg_mark *found = NULL;

	for (size_t i = 0; i < ld->n_marks; i++) {
		if (strcmp(ld->marks[i].path, path))
			continue;
		found = &ld->marks[i];
		if (!last)
			break;
	}
	return found;
}

/*
 * Line of path: of its key if key, else of its value. A path that is not in
 * the document (a default, a node reached through an alias) gets the line of
 * its nearest ancestor that is.
 */
static unsigned cfg_line(const struct cfg_ld *ld, const char *path, bool key, bool last)
{
	char p[CFG_PATH_MAX];
	const struct cfg_mark *m;

	snprintf(p, sizeof(p), "%s", path);
	for (;;) {
		m = cfg_mark_find(ld, p, last);
		if (m)
			return key ? m->kline : m->vline;
		if (!*p)
			return 1;
		char *dot = strrchr(p, '.'), *br = strrchr(p, '[');

		*(dot > br ? dot : br ? br : p) = '\0';
	}
}

static bool cfg_present(const struct cfg_ld *ld, const char *path)
{
	return cfg_mark_find(ld, path, false) != NULL;
}

struct cfg_frame {
	bool map;
	bool want_key;          /* map: the next node is a key */
	unsigned idx;           /* sequence: index of the next entry */
	int rec;                /* map: mark of the current key */
	char path[CFG_PATH_MAX];
	char key[CFG_PATH_MAX]; /* map: path of the current key */
};

struct cfg_walk {
	struct cfg_frame st[CFG_DEPTH_MAX];
	unsigned depth;         /* may exceed CFG_DEPTH_MAX; deeper is not indexed */
};

/* A node ended: its mapping flips between expecting a key and a value. */
static void cfg_walk_end(struct cfg_walk *w)
{
	if (w->depth > 0 && w->depth <= CFG_DEPTH_MAX && w->st[w->depth - 1].map)
		w->st[w->depth - 1].want_key = !w->st[w->depth - 1].want_key;
}

/* A node starts: record its path and line, enter it if a collection. 0 or -errno. */
static int cfg_walk_node(struct cfg_ld *ld, struct cfg_walk *w, const yaml_event_t *ev,
			 unsigned line)
{
	bool coll = ev->type == YAML_SEQUENCE_START_EVENT ||
		    ev->type == YAML_MAPPING_START_EVENT;
	struct cfg_frame *f = w->depth ? &w->st[w->depth - 1] : NULL;
	char path[CFG_PATH_MAX] = "";
	int rc = 0;

	if (w->depth > CFG_DEPTH_MAX) {
		/* not indexed */
	} else if (!f) {
		rc = cfg_mark_add(ld, "", line);
	} else if (f->map && f->want_key) {
		if (ev->type != YAML_SCALAR_EVENT)   /* "[::1]:25" in a flow sequence */
			return cfg_fail(ld, -EINVAL, line, f->path, "mapping key is not a string%s",
					ev->type == YAML_SEQUENCE_START_EVENT ?
					"; quote \"[v6]:port\" addresses" : "");
		snprintf(path, sizeof(path), "%s%s%s", f->path, *f->path ? "." : "",
			 (const char *)ev->data.scalar.value);
		memcpy(f->key, path, sizeof(path));
		rc = f->rec = cfg_mark_add(ld, path, line);
	} else if (f->map) {
		ld->marks[f->rec].vline = line;
		memcpy(path, f->key, sizeof(path));
	} else {
		if (snprintf(path, sizeof(path), "%s[%u]", f->path, f->idx++) >= (int)sizeof(path))
			path[0] = '\0';        /* absurdly deep: the root's line will do */
		rc = cfg_mark_add(ld, path, line);
	}
	if (rc < 0)
		return rc;
	if (!coll) {
		cfg_walk_end(w);
		return 0;
	}
	if (w->depth < CFG_DEPTH_MAX) {
		f = &w->st[w->depth];
		memset(f, 0, sizeof(*f));
		f->map = ev->type == YAML_MAPPING_START_EVENT;
		f->want_key = true;
		memcpy(f->path, path, sizeof(path));
	}
	w->depth++;
	return 0;
}

/* A libyaml parse error as "NAME:LINE:COL: syntax error: ..."; returns -EINVAL. */
static int cfg_syntax(struct cfg_ld *ld, const yaml_parser_t *p, const char *yaml, size_t len)
{
	size_t at = p->problem_mark.index < len ? p->problem_mark.index : len, b = at, e = at;
	int n;

	if (!ld->err || !ld->errlen)
		return -EINVAL;
	n = snprintf(ld->err, ld->errlen, "%s:%zu:%zu: syntax error: %s", ld->name,
		     p->problem_mark.line + 1, p->problem_mark.column + 1,
		     p->problem ? p->problem : "invalid YAML");
	if (p->context && n > 0 && (size_t)n < ld->errlen)
		n += snprintf(ld->err + n, ld->errlen - n, " (%s at line %zu)", p->context,
			      p->context_mark.line + 1);
	/* "address: [::1]:25" is a flow sequence followed by junk. */
	while (b > 0 && yaml[b - 1] != '\n')
		b--;
	while (e < len && yaml[e] != '\n')
		e++;
	if (memmem(yaml + b, e - b, "]:", 2) && n > 0 && (size_t)n < ld->errlen)
		snprintf(ld->err + n, ld->errlen - n, "; quote \"[v6]:port\" addresses");
	return -EINVAL;
}

/*
 * Parse the whole stream with libyaml and index its document. Returns 0,
 * -EINVAL with a syntax error in err, or -ENOMEM.
 */
static int cfg_index(struct cfg_ld *ld, const char *yaml, size_t len)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct cfg_walk *w;
	unsigned docs = 0, line;
	bool end = false;
	int rc = 0;

	w = calloc(1, sizeof(*w));
	if (!w)
		return cfg_oom(ld);
	if (!yaml_parser_initialize(&parser)) {
		free(w);
		return cfg_oom(ld);
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	while (!end && rc == 0) {
		if (!yaml_parser_parse(&parser, &ev)) {
			rc = parser.error == YAML_MEMORY_ERROR ? -ENOMEM :
			     cfg_syntax(ld, &parser, yaml, len);
			break;
		}
		line = (unsigned)ev.start_mark.line + 1;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			end = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (docs++)
				rc = cfg_fail(ld, -EINVAL, line, NULL,
					      "only one YAML document is allowed");
			break;
		case YAML_SCALAR_EVENT:
		case YAML_ALIAS_EVENT:
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			rc = cfg_walk_node(ld, w, &ev, line);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			w->depth--;
			cfg_walk_end(w);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	free(w);
	return rc == -ENOMEM ? cfg_oom(ld) : rc;
}

/* ---- libcyaml errors ----------------------------------------------------- */

/* cyaml_config.log_fn: keep the first error and its backtrace, print nothing. */
static void cfg_cyaml_log(cyaml_log_t level, void *ctx, const char *fmt, va_list ap)
{
	struct cfg_ld *ld = ctx;
	char line[CFG_MSG_MAX];
	char *s = line, *q;
	size_t n;

	if (level < CYAML_LOG_ERROR)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	if (!strncmp(s, "  in ", 5)) {
		if (!ld->bt_open || ld->n_bt == CFG_BT_MAX)
			return;
		struct cfg_bt *b = &ld->bt[ld->n_bt++];

		s += 5;
		memset(b, 0, sizeof(*b));
		if (!strncmp(s, "mapping field '", 15)) {
			b->kind = CFG_BT_FIELD;
			s += 15;
			q = strstr(s, "' (line:");
			n = q ? (size_t)(q - s) : strlen(s);
			if (n >= sizeof(b->field))
				n = sizeof(b->field) - 1;
			memcpy(b->field, s, n);
		} else if (!strncmp(s, "sequence entry '", 16)) {
			b->kind = CFG_BT_ENTRY;
			b->entry = (unsigned)strtoul(s + 16, NULL, 10);
		} else {
			b->kind = CFG_BT_MAPPING;
		}
		return;
	}
	if (!strncmp(s, "Load: ", 6))
		s += 6;
	if (!strcmp(s, "Backtrace:")) {
		ld->bt_open = ld->msg[0] && ld->n_bt == 0;
		return;
	}
	ld->bt_open = false;
	if (!ld->msg[0])
		snprintf(ld->msg, sizeof(ld->msg), "%s", s);
}

/* The schema value a path names ("listeners[0].tls"), or NULL. */
static const cyaml_schema_value_t *cfg_schema_at(const char *path)
{
	const cyaml_schema_value_t *v = &cfg_schema;
	const char *p = path;

	while (*p) {
		if (*p == '[') {
			if (v->type != CYAML_SEQUENCE || !(p = strchr(p, ']')))
				return NULL;
			v = v->sequence.entry;
			p++;
			continue;
		}
		if (*p == '.')
			p++;
		size_t n = strcspn(p, ".[");
		const cyaml_schema_field_t *f;

		if (v->type != CYAML_MAPPING)
			return NULL;
		for (f = v->mapping.fields; f->key; f++)
			if (strlen(f->key) == n && !strncmp(f->key, p, n))
				break;
		if (!f->key)
			return NULL;
		v = &f->value;
		p += n;
	}
	return v;
}

/* What the schema expects at path, in words: "a string", "one of a, b". */
static void cfg_expected(const char *path, char *buf, size_t len)
{
	const cyaml_schema_value_t *v = cfg_schema_at(path);
	size_t n;

	snprintf(buf, len, "a value");
	if (!v)
		return;
	switch (v->type) {
	case CYAML_INT:      snprintf(buf, len, "an integer"); break;
	case CYAML_UINT:     snprintf(buf, len, "a non-negative integer"); break;
	case CYAML_BOOL:     snprintf(buf, len, "true or false"); break;
	case CYAML_STRING:   snprintf(buf, len, "a string"); break;
	case CYAML_MAPPING:  snprintf(buf, len, "a mapping"); break;
	case CYAML_SEQUENCE: snprintf(buf, len, "a sequence"); break;
	case CYAML_ENUM:
		n = 0;
		for (uint32_t i = 0; i < v->enumeration.count && n < len; i++)
			n += snprintf(buf + n, len - n, "%s%s", i ? ", " : "",
				      v->enumeration.strings[i].str);
		break;
	default:
		break;
	}
}

/* "got event: SEQUENCE_START" in words. */
static const char *cfg_event_words(const char *ev)
{
	if (!strncmp(ev, "SEQUENCE", 8))
		return "a sequence";
	if (!strncmp(ev, "MAPPING", 7))
		return "a mapping";
	if (!strncmp(ev, "SCALAR", 6))
		return "a scalar";
	return ev;
}

/*
 * Turn libcyaml's error and backtrace into "NAME:LINE: PATH: reason".
 * Returns -ENOMEM or -EINVAL.
 */
static int cfg_cyaml_fail(struct cfg_ld *ld, cyaml_err_t e)
{
	char path[CFG_PATH_MAX] = "", child[CFG_PATH_MAX + CFG_MSG_MAX], exp[160], val[128];
	const char *m = ld->msg, *arg = strstr(m, ": ");
	bool dup = !strncmp(m, "Mapping field already seen: ", 28);
	unsigned first = 0, a, b;
	size_t n = 0;

	/* The document already parsed cleanly once: a libyaml failure now is memory. */
	if (e == CYAML_ERR_OOM || e == CYAML_ERR_LIBYAML_PARSER_INIT ||
	    e == CYAML_ERR_LIBYAML_EVENT_INIT || e == CYAML_ERR_LIBYAML_PARSER)
		return cfg_oom(ld);
	/* These are raised with the previous field (or the count) on top. */
	if (ld->n_bt && ((ld->bt[0].kind == CFG_BT_FIELD &&
			  (e == CYAML_ERR_MAPPING_FIELD_MISSING || dup)) ||
			 (ld->bt[0].kind == CFG_BT_ENTRY &&
			  (e == CYAML_ERR_SEQUENCE_ENTRIES_MIN ||
			   e == CYAML_ERR_SEQUENCE_ENTRIES_MAX))))
		first = 1;
	for (unsigned i = ld->n_bt; i-- > first && n < sizeof(path);) {
		if (ld->bt[i].kind == CFG_BT_FIELD)
			n += snprintf(path + n, sizeof(path) - n, "%s%s", n ? "." : "",
				      ld->bt[i].field);
		else if (ld->bt[i].kind == CFG_BT_ENTRY)
			n += snprintf(path + n, sizeof(path) - n, "[%u]",
				      ld->bt[i].entry ? ld->bt[i].entry - 1 : 0);
	}
	arg = arg ? arg + 2 : "";

	if (!strncmp(m, "Unexpected key: ", 16) || dup) {
		snprintf(child, sizeof(child), "%s%s%s", path, *path ? "." : "", arg);
		return cfg_fail(ld, -EINVAL, cfg_line(ld, child, true, dup), child,
				dup ? "duplicate key" : "unknown key");
	}
	if (!strncmp(m, "Missing required mapping field: ", 32))
		return cfg_err(ld, path, "missing required key '%s'", arg);
	cfg_expected(path, exp, sizeof(exp));
	if (!strncmp(m, "Invalid ", 8) && (arg = strstr(m, " value: "))) {
		arg += 8;
		n = strlen(arg);
		if (n >= 2 && arg[0] == '\'' && arg[n - 1] == '\'') {
			arg++;
			n -= 2;
		}
		snprintf(val, sizeof(val), "%.*s", (int)n, arg);
		return cfg_err(ld, path, "invalid value '%s' (expected %s)", val, exp);
	}
	if (!strncmp(m, "Expecting ", 10) && (arg = strstr(m, "got event: ")))
		return cfg_err(ld, path, "expected %s, got %s", exp, cfg_event_words(arg + 11));
	if (sscanf(m, "Insufficient entries (%u of %u min)", &a, &b) == 2)
		return cfg_err(ld, path, "at least %u entr%s required", b, b == 1 ? "y" : "ies");
	if (!strncmp(m, "STRING length < ", 16))
		return cfg_err(ld, path, "must not be empty");
	return cfg_err(ld, path, "%s", m[0] ? m : cyaml_strerror(e));
}

/* ---- addresses ----------------------------------------------------------- */

/* Parse "a.b.c.d:port", "[v6]:port" or "host:port"; 0, -EINVAL, -ERANGE, -ENOENT. */
int cfg_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints, *res = NULL;
	char host[256];
	const char *port, *c;
	size_t hlen;
	bool v6 = s[0] == '[';
	unsigned long pn;
	int rc;

	if (v6) {
		c = strchr(s, ']');
		if (!c || c[1] != ':')
			return -EINVAL;
		hlen = (size_t)(c - s - 1);
		s++;
		port = c + 2;
	} else {
		c = strrchr(s, ':');
		if (!c || memchr(s, ':', (size_t)(c - s)))
			return -EINVAL;
		hlen = (size_t)(c - s);
		port = c + 1;
	}
	if (hlen == 0 || hlen >= sizeof(host) || !*port || strlen(port) > 5 ||
	    strspn(port, "0123456789") != strlen(port))
		return -EINVAL;
	pn = strtoul(port, NULL, 10);
	if (pn < 1 || pn > 65535)
		return -ERANGE;
	memcpy(host, s, hlen);
	host[hlen] = '\0';

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = v6 ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc == EAI_NONAME && !v6) {
		hints.ai_flags = AI_NUMERICSERV;
		rc = getaddrinfo(host, port, &hints, &res);
	}
	if (rc)
		return rc == EAI_MEMORY ? -ENOMEM : v6 ? -EINVAL : -ENOENT;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* cfg_parse_addr with the error written for path; 0 or negative errno. */
static int cfg_addr_at(struct cfg_ld *ld, const char *path, const char *s,
		       struct sockaddr_storage *ss, socklen_t *len)
{
	switch (cfg_parse_addr(s, ss, len)) {
	case 0:
		return 0;
	case -ENOMEM:
		return cfg_oom(ld);
	case -ERANGE:
		return cfg_err(ld, path, "port out of range in '%s' (expected 1..65535)", s);
	case -ENOENT:
		return cfg_err(ld, path, "cannot resolve host in '%s'", s);
	default:
		return cfg_err(ld, path, "cannot parse address '%s' (expected HOST:PORT)", s);
	}
}

int cfg_parse_net(const char *s, struct cfg_net *n)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long prefix;
	char *end;

	memset(n, 0, sizeof(*n));
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hlen);
	host[hlen] = 0;
	if (inet_pton(AF_INET, host, n->addr) == 1)
		n->family = AF_INET;
	else if (inet_pton(AF_INET6, host, n->addr) == 1)
		n->family = AF_INET6;
	else
		return -EINVAL;
	prefix = n->family == AF_INET ? 32 : 128;
	if (slash) {
		unsigned long max = prefix;

		errno = 0;
		prefix = strtoul(slash + 1, &end, 10);
		if (!slash[1] || *end || errno || prefix > max)
			return -EINVAL;
	}
	n->prefix = (unsigned)prefix;
	/* Host bits set ("192.0.2.1/24") would be a typo: refuse it. */
	for (unsigned b = n->prefix; b < (n->family == AF_INET ? 32u : 128u); b++)
		if (n->addr[b / 8] & (0x80 >> (b % 8)))
			return -EINVAL;
	return 0;
}

bool cfg_net_contains(const struct cfg_net *n, const struct sockaddr *sa)
{
	const unsigned char *a;
	unsigned full = n->prefix / 8, rest = n->prefix % 8;

	if (sa->sa_family == AF_INET && n->family == AF_INET) {
		a = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		a = (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (n->family == AF_INET) {
			/* an IPv4 client on a dual-stack socket: ::ffff:a.b.c.d */
			static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };

			if (memcmp(a, mapped, 12))
				return false;
			a += 12;
		}
	} else {
		return false;
	}
	if (memcmp(a, n->addr, full))
		return false;
	return !rest || !((a[full] ^ n->addr[full]) & (0xff00 >> rest));
}

/* Same family, address and port. */
static bool cfg_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	const struct sockaddr_in *x4 = (const void *)a, *y4 = (const void *)b;
	const struct sockaddr_in6 *x6 = (const void *)a, *y6 = (const void *)b;

	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return x4->sin_port == y4->sin_port && x4->sin_addr.s_addr == y4->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return x6->sin6_port == y6->sin6_port &&
		       !memcmp(&x6->sin6_addr, &y6->sin6_addr, sizeof(x6->sin6_addr));
	return false;
}

/* ---- semantic checks and defaults ---------------------------------------- */

/* Check lo <= *v <= hi, or apply def if path is absent; 0 or -EINVAL. */
static int cfg_uint(struct cfg_ld *ld, const char *path, unsigned *v, unsigned def,
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
	static const struct cfg_timeouts def = { 300, 60, 600 };
	const struct cfg_timeouts *d = inherit ? inherit : &def;
	unsigned *v[] = { &t->plaintext, &t->handshake, &t->idle };
	const unsigned dv[] = { d->plaintext, d->handshake, d->idle };
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

/* Top-level scalars: defaults and ranges. */
static int cfg_check_global(struct cfg_ld *ld, struct cfg *c)
{
	char host[HOST_NAME_MAX + 1] = "";
	int rc;

	if (!c->hostname) {
		if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
			snprintf(host, sizeof(host), "localhost");
		if (!(c->hostname = strdup(host)))
			return cfg_oom(ld);
	}
	if (c->user && !getpwnam(c->user))
		return cfg_err(ld, "user", "no such user '%s'", c->user);
	if ((rc = cfg_uint(ld, "cores", &c->cores, 1, 1, CFG_CORES_MAX)) ||
	    (rc = cfg_uint(ld, "workers", &c->workers, 1, 1, CFG_CORES_MAX)) ||
	    (rc = cfg_uint(ld, "session_cache", &c->session_cache, 20480, 0, 10000000)) ||
	    (rc = cfg_uint(ld, "tickets.rotate", &c->tickets.rotate, 3600, 60, 7 * 86400)) ||
	    /* RFC 8446 4.6.1: no ticket lives longer than seven days */
	    (rc = cfg_uint(ld, "tickets.lifetime", &c->tickets.lifetime, 7200, 60, 7 * 86400)))
		return rc;
	if (!cfg_present(ld, "tickets.enabled"))
		c->tickets.enabled = true;
	if (c->tickets.key_file && cfg_present(ld, "tickets.rotate"))
		return cfg_err(ld, "tickets.rotate", "not with tickets.key_file: the key "
			       "file's keys are used, in its order, and it is re-read when it changes");
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
		b->proxy = CFG_PROXY_V2;
	snprintf(p, sizeof(p), "backends[%u].connect_timeout", i);
	if ((rc = cfg_uint(ld, p, &b->connect_timeout, 5, 1, 300)))
		return rc;
	snprintf(p, sizeof(p), "backends[%u].health_interval", i);
	if ((rc = cfg_uint(ld, p, &b->health_interval, 10, 1, 3600)))
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

static const char *const cfg_key_kinds[] = { "ecdsa-p256", "ecdsa-p384", "ed25519", "rsa" };

/* A host name as a certificate may carry it: labels of letters, digits and
 * hyphens, or "*." before such a name (RFC 6125 6.4.3: leftmost label only). */
static bool cfg_host_name_ok(const char *n)
{
	size_t label = 0;

	if (!strncmp(n, "*.", 2))
		n += 2;
	if (!*n || strlen(n) > 253)
		return false;
	for (; *n; n++) {
		if (*n == '.') {
			if (!label)
				return false;
			label = 0;
		} else if ((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') ||
			   (*n >= '0' && *n <= '9') || (*n == '-' && label)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}

/* Cert set i: unique name, valid names and key types, lines. */
static int cfg_check_cert_set(struct cfg_ld *ld, struct cfg *c, unsigned i)
{
	struct cfg_cert_set *cs = &c->cert_sets[i];
	char p[CFG_PATH_MAX];

	snprintf(p, sizeof(p), "cert_sets[%u]", i);
	cs->line = cfg_line(ld, p, false, false);
	snprintf(p, sizeof(p), "cert_sets[%u].name", i);
	for (unsigned j = 0; j < i; j++)
		if (!strcmp(c->cert_sets[j].name, cs->name))
			return cfg_err(ld, p, "duplicate cert set name '%s' (first at line %u)",
				       cs->name, c->cert_sets[j].line);
	for (unsigned j = 0; j < cs->n_names; j++) {
		snprintf(p, sizeof(p), "cert_sets[%u].names[%u]", i, j);
		if (!cfg_host_name_ok(cs->names[j]))
			return cfg_err(ld, p, "'%s' is not a host name (a wildcard is '*.' "
				       "before a name)", cs->names[j]);
	}
	for (unsigned j = 0; j < cs->n_prefer; j++) {
		size_t k;

		snprintf(p, sizeof(p), "cert_sets[%u].prefer[%u]", i, j);
		for (k = 0; k < CYAML_ARRAY_LEN(cfg_key_kinds); k++)
			if (!strcmp(cs->prefer[j], cfg_key_kinds[k]))
				break;
		if (k == CYAML_ARRAY_LEN(cfg_key_kinds))
			return cfg_err(ld, p, "unknown key type '%s' (expected ecdsa-p256, "
				       "ecdsa-p384, ed25519, rsa)", cs->prefer[j]);
		for (unsigned m = 0; m < j; m++)
			if (!strcmp(cs->prefer[m], cs->prefer[j]))
				return cfg_err(ld, p, "'%s' is listed twice", cs->prefer[j]);
	}
	for (unsigned j = 0; j < cs->n_certs; j++) {
		snprintf(p, sizeof(p), "cert_sets[%u].certs[%u]", i, j);
		cs->certs[j].line = cfg_line(ld, p, false, false);
	}
	return 0;
}

/* The policy of the listener, or of its first rule whose networks hold
 * the client. */
enum cfg_policy cfg_policy_for(const struct cfg_listener *l, const struct sockaddr *sa)
{
	for (unsigned i = 0; i < l->n_policy_rules; i++)
		for (unsigned j = 0; j < l->policy_by_network[i].n_networks; j++)
			if (cfg_net_contains(&l->policy_by_network[i].nets[j], sa))
				return l->policy_by_network[i].policy;
	return l->policy;
}

/* Listener i: cert sets resolved, policy and its network rules. */
static int cfg_check_listener_tls(struct cfg_ld *ld, struct cfg *c, unsigned i)
{
	struct cfg_listener *l = &c->listeners[i];
	char p[CFG_PATH_MAX];

	if (l->n_certs && l->n_cert_sets) {
		snprintf(p, sizeof(p), "listeners[%u].cert_sets", i);
		return cfg_err(ld, p, "a listener names its certificates with certs or "
			       "cert_sets, not both");
	}
	if (l->n_cert_sets && !(l->sets = calloc(l->n_cert_sets, sizeof(*l->sets))))
		return cfg_oom(ld);
	for (unsigned j = 0; j < l->n_cert_sets; j++) {
		snprintf(p, sizeof(p), "listeners[%u].cert_sets[%u]", i, j);
		for (unsigned k = 0; k < c->n_cert_sets && !l->sets[j]; k++)
			if (!strcmp(c->cert_sets[k].name, l->cert_sets[j]))
				l->sets[j] = &c->cert_sets[k];
		if (!l->sets[j])
			return cfg_err(ld, p, "no cert set named '%s'", l->cert_sets[j]);
		for (unsigned k = 0; k < j; k++)
			if (l->sets[k] == l->sets[j])
				return cfg_err(ld, p, "cert set '%s' is listed twice", l->cert_sets[j]);
	}
	snprintf(p, sizeof(p), "listeners[%u].policy", i);
	if (!cfg_present(ld, p))
		l->policy = CFG_POLICY_INTERMEDIATE;
	for (unsigned j = 0; j < l->n_policy_rules; j++) {
		struct cfg_policy_rule *r = &l->policy_by_network[j];

		snprintf(p, sizeof(p), "listeners[%u].policy_by_network[%u]", i, j);
		r->line = cfg_line(ld, p, false, false);
		if (!(r->nets = calloc(r->n_networks, sizeof(*r->nets))))
			return cfg_oom(ld);
		for (unsigned k = 0; k < r->n_networks; k++) {
			snprintf(p, sizeof(p), "listeners[%u].policy_by_network[%u].networks[%u]",
				 i, j, k);
			if (cfg_parse_net(r->networks[k], &r->nets[k]) < 0)
				return cfg_err(ld, p, "cannot parse network '%s' (expected "
					       "ADDRESS/PREFIX, e.g. 192.0.2.0/24 or "
					       "2001:db8::/32)", r->networks[k]);
		}
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

	if (!l->hostname && !(l->hostname = strdup(c->hostname)))
		return cfg_oom(ld);
	for (unsigned j = 0; j < l->n_certs; j++) {
		snprintf(p, sizeof(p), "listeners[%u].certs[%u]", i, j);
		l->certs[j].line = cfg_line(ld, p, false, false);
	}
	snprintf(p, sizeof(p), "listeners[%u].detect_implicit_ms", i);
	if ((rc = cfg_uint(ld, p, &l->detect_implicit_ms, 0, 0, 5000)))
		return rc;
	if (l->detect_implicit_ms && l->tls != CFG_TLS_STARTTLS && l->tls != CFG_TLS_REQUIRED)
		return cfg_err(ld, p, "only for a listener with tls: starttls or required");
	if ((rc = cfg_check_listener_tls(ld, c, i)))
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
		.flags = CYAML_CFG_DEFAULT,
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
	*out = c;
	c = NULL;
	rc = 0;
fail:
	cfg_free(c);
	for (size_t i = 0; i < ld.n_marks; i++)
		free(ld.marks[i].path);
	free(ld.marks);
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

const char *cfg_policy_name(enum cfg_policy p)
{
	return cfg_strval(cfg_policy_strs, CYAML_ARRAY_LEN(cfg_policy_strs), p);
}

const char *cfg_proxy_name(enum cfg_proxy p)
{
	return cfg_strval(cfg_proxy_strs, CYAML_ARRAY_LEN(cfg_proxy_strs), p);
}
