/*
 * The loader's path -> line index (libyaml events). The line of every key
 * path ("listeners[1].tls") as written, for messages and for the `line`
 * fields of the loaded configuration.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* memmem */
#endif
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "config_int.h"

#define CFG_DEPTH_MAX 32        /* deeper nodes are not indexed */

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
unsigned cfg_line(const struct cfg_ld *ld, const char *path, bool key, bool last)
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

bool cfg_present(const struct cfg_ld *ld, const char *path)
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
	struct cfg_frame *f = w->depth && w->depth <= CFG_DEPTH_MAX ? &w->st[w->depth - 1] : NULL;
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

/* Parse the whole stream with libyaml and index its document (config_int.h). */
int cfg_index(struct cfg_ld *ld, const char *yaml, size_t len)
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
		case YAML_ALIAS_EVENT:
			/* An alias repeats a node: a few KiB of nested aliases
			 * expand into millions of rules (issue 12, finding 3). A
			 * configuration writes its values out. */
			rc = cfg_fail(ld, -EINVAL, line, NULL, "YAML aliases (*%.64s) are not "
				      "allowed: write the value out",
				      (const char *)ev.data.alias.anchor);
			break;
		case YAML_SCALAR_EVENT:
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

void cfg_index_free(struct cfg_ld *ld)
{
	for (size_t i = 0; i < ld->n_marks; i++)
		free(ld->marks[i].path);
	free(ld->marks);
	ld->marks = NULL;
	ld->n_marks = ld->cap_marks = 0;
}
