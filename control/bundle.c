/* A configuration with its files, read and proved (bundle.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "config.h"

/* Add every file c names; one that cannot be read is skipped (see .h). */
static void add_named(struct bundle *b, const struct cfg *c)
{
	unsigned i, j;

	for (i = 0; i < c->n_listeners; i++)
		for (j = 0; j < c->listeners[i].n_certs; j++) {
			(void)cfg_files_add(&b->files, c->listeners[i].certs[j].cert);
			(void)cfg_files_add(&b->files, c->listeners[i].certs[j].key);
		}
	for (i = 0; i < c->n_cert_sets; i++)
		for (j = 0; j < c->cert_sets[i].n_certs; j++) {
			(void)cfg_files_add(&b->files, c->cert_sets[i].certs[j].cert);
			(void)cfg_files_add(&b->files, c->cert_sets[i].certs[j].key);
		}
	if (c->tickets.key_file)
		(void)cfg_files_add(&b->files, c->tickets.key_file);
}

static const char *name_of(const struct bundle *b)
{
	return b->path ? b->path : "(embedded default)";
}

int bundle_validate(struct bundle *b, char *err, size_t errlen)
{
	int rc;

	if (b->valid) {
		tls_conf_free(&b->tc);
		b->valid = false;
	}
	rc = tls_conf_load(b->yaml, b->len, name_of(b), &b->files, &b->tc, err, errlen);
	if (rc == 0)
		b->valid = true;
	return rc;
}

int bundle_read(struct bundle *b, const char *path, char *err, size_t errlen)
{
	struct cfg *c = NULL;
	int rc;

	memset(b, 0, sizeof(*b));
	if (path) {
		if (!(b->path = strdup(path)))
			goto nomem;
		if ((rc = cfg_file_read(NULL, path, &b->yaml, &b->len)) < 0) {
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-rc));
			goto fail;
		}
	} else {
		if (!(b->yaml = malloc(cfg_default_yaml_len + 1)))
			goto nomem;
		memcpy(b->yaml, cfg_default_yaml, cfg_default_yaml_len);
		b->yaml[cfg_default_yaml_len] = 0;
		b->len = cfg_default_yaml_len;
	}
	/* Parsed once to learn the files it names, then proved with them. */
	if ((rc = cfg_load_string(b->yaml, b->len, name_of(b), &c, err, errlen)) < 0)
		goto fail;
	add_named(b, c);
	cfg_free(c);
	if ((rc = bundle_validate(b, err, errlen)) < 0)
		goto fail;
	return 0;
nomem:
	snprintf(err, errlen, "%s: out of memory", path ? path : "configuration");
	rc = -ENOMEM;
fail:
	bundle_free(b);
	return rc;
}

int bundle_copy(struct bundle *dst, const struct bundle *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src->path && !(dst->path = strdup(src->path)))
		goto nomem;
	if (!(dst->yaml = malloc(src->len + 1)))
		goto nomem;
	memcpy(dst->yaml, src->yaml, src->len + 1);
	dst->len = src->len;
	for (unsigned i = 0; i < src->files.n; i++) {
		const struct cfg_file *f = &src->files.f[i];
		struct cfg_file *g;

		if (cfg_files_put(&dst->files, f->path, f->data, f->len, f->mode) < 0)
			goto nomem;
		g = &dst->files.f[dst->files.n - 1];
		g->uid = f->uid;
		g->gid = f->gid;
	}
	return 0;
nomem:
	bundle_free(dst);
	return -ENOMEM;
}

void bundle_free(struct bundle *b)
{
	if (b->valid)
		tls_conf_free(&b->tc);
	cfg_files_clear(&b->files);
	free(b->path);
	free(b->yaml);
	memset(b, 0, sizeof(*b));
}

json_t *bundle_load_request(const struct bundle *b, bool force, char *err, size_t errlen)
{
	json_t *files = json_object(), *req, *text;

	if (!files)
		goto nomem;
	for (unsigned i = 0; i < b->files.n; i++) {
		const struct cfg_file *f = &b->files.f[i];
		json_t *data = json_stringn(f->data, f->len), *o;

		/* PEM is text; a file that is not UTF-8 cannot travel as a
		 * JSON string and is no PEM either. */
		if (!data) {
			snprintf(err, errlen, "%s: not a text (PEM) file", f->path);
			json_decref(files);
			return NULL;
		}
		o = json_pack("{s:o,s:i,s:i,s:i}", "data", data, "mode", (json_int_t)f->mode,
			      "uid", (json_int_t)f->uid, "gid", (json_int_t)f->gid);
		if (!o || json_object_set_new(files, f->path, o) < 0)
			goto nomem_files;
	}
	if (!(text = json_stringn(b->yaml, b->len))) {
		snprintf(err, errlen, "%s: not UTF-8 text", name_of(b));
		json_decref(files);
		return NULL;
	}
	req = json_pack("{s:s,s:s,s:o,s:o,s:b}", "cmd", "load", "path", name_of(b), "yaml", text,
			"files", files, "force", force);
	if (!req)
		goto nomem;
	return req;
nomem_files:
	json_decref(files);
nomem:
	snprintf(err, errlen, "out of memory");
	return NULL;
}
