/*
 * The loader's error messages: "FILE:LINE: KEY: reason", and libcyaml's
 * error and backtrace (libcyaml 1.3.1 names the failing key only there,
 * with no reliable line) turned into one, the line taken from the index
 * (config_lines.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cyaml/cyaml.h>

#include "config_int.h"

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
int cfg_fail(struct cfg_ld *ld, int rc, unsigned line, const char *path,
	     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cfg_vfail(ld, rc, line, path, fmt, ap);
	va_end(ap);
	return rc;
}

/* An error about the value at path, on its line; returns -EINVAL. */
int cfg_err(struct cfg_ld *ld, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cfg_vfail(ld, -EINVAL, cfg_line(ld, path, false, false), path, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* "out of memory"; returns -ENOMEM. */
int cfg_oom(struct cfg_ld *ld)
{
	return cfg_fail(ld, -ENOMEM, 0, NULL, "out of memory");
}

/* cyaml_config.log_fn: keep the first error and its backtrace, print nothing. */
void cfg_cyaml_log(cyaml_log_t level, void *ctx, const char *fmt, va_list ap)
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
int cfg_cyaml_fail(struct cfg_ld *ld, cyaml_err_t e)
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
	/* The bounds of config_int.h: never echo the (long) value. */
	if (sscanf(m, "STRING length > %u", &a) == 1)
		return cfg_err(ld, path, "longer than %u bytes", a);
	if (sscanf(m, "Excessive entries (%u max)", &a) == 1)
		return cfg_err(ld, path, "more than %u entries (the most a configuration "
			       "may hold)", a);
	return cfg_err(ld, path, "%s", m[0] ? m : cyaml_strerror(e));
}
