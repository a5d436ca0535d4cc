/* The staged change: stage, check, commit, abort (stage.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "clog.h"
#include "ctl.h"
#include "policy_edit.h"
#include "stage.h"
#include "tls.h"
#include "writeback.h"
#if HAVE_IMPACT
#include "control/impact.h"
#endif

#define STAGE_FILES 3   /* a certificate, its key; or the configuration */

struct stage {
	unsigned long long id;     /* a check waiting for hellos finds its stage by it */
	char what[512];            /* for status and the log */
	struct bundle b;           /* the whole configuration after the change, proved */
	char *paths[STAGE_FILES];  /* the files the change rewrites */
	unsigned n_paths;
	bool yaml_changed;         /* paths[0] is the configuration file */
};

const char *stage_what(const struct stage *st)
{
	return st->what;
}

void stage_free(struct stage *st)
{
	if (!st)
		return;
	bundle_free(&st->b);
	for (unsigned i = 0; i < st->n_paths; i++)
		free(st->paths[i]);
	free(st);
}

static int add_path(struct stage *st, const char *p)
{
	for (unsigned i = 0; i < st->n_paths; i++)
		if (!strcmp(st->paths[i], p))
			return 0;
	if (st->n_paths == STAGE_FILES || !(st->paths[st->n_paths] = strdup(p)))
		return -ENOMEM;
	st->n_paths++;
	return 0;
}

/* A new stage holding a copy of the running configuration. */
static struct stage *stage_new(struct ctl *ctl, json_t **err)
{
	struct stage *st;

	*err = NULL;
	if (ctl->stage) {
		*err = jline_error("a change is already staged (%s): commit or abort it first",
				   ctl->stage->what);
		return NULL;
	}
	if (!ctl->cur.valid) {
		*err = jline_error("no valid configuration loaded");
		return NULL;
	}
	if (!(st = calloc(1, sizeof(*st))) || bundle_copy(&st->b, &ctl->cur) < 0) {
		free(st);
		*err = jline_error("out of memory");
		return NULL;
	}
	{
		static unsigned long long ids;

		st->id = ++ids;
	}
	return st;
}

/* The key type of the leaf (first certificate) of pem, as tls.h numbers
 * them, and its kind ("ecdsa-p256") in kind; <0 if none. */
static int pem_key_type(const char *pem, char *kind, size_t klen)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	EVP_PKEY *k = x ? X509_get0_pubkey(x) : NULL;
	int t = -1;

	if (k) {
		tls_key_kind(k, kind, klen);
		if (!strncmp(kind, "rsa", 3))
			t = TLS_KEY_RSA;
		else if (!strcmp(kind, "ecdsa-p256"))
			t = TLS_KEY_ECDSA_P256;
		else if (!strcmp(kind, "ecdsa-p384"))
			t = TLS_KEY_ECDSA_P384;
		else if (!strcmp(kind, "ed25519"))
			t = TLS_KEY_ED25519;
	}
	X509_free(x);
	BIO_free(bio);
	ERR_clear_error();
	return t;
}

static bool ecdsa(enum tls_key_type t)
{
	return t == TLS_KEY_ECDSA_P256 || t == TLS_KEY_ECDSA_P384;
}

/* The cfg_cert of set (a cert set's name, or a listener's own) whose
 * certificate file is source. */
static const struct cfg_cert *cfg_cert_of(const struct cfg *c, const struct tls_certset *s,
					  const char *source)
{
	const struct cfg_cert *certs = NULL;
	unsigned n = 0;

	if (!strncmp(s->name, "listener ", 9)) {
		for (unsigned i = 0; i < c->n_listeners; i++)
			if (!strcmp(c->listeners[i].name, s->name + 9)) {
				certs = c->listeners[i].certs;
				n = c->listeners[i].n_certs;
			}
	} else {
		for (unsigned i = 0; i < c->n_cert_sets; i++)
			if (!strcmp(c->cert_sets[i].name, s->name)) {
				certs = c->cert_sets[i].certs;
				n = c->cert_sets[i].n_certs;
			}
	}
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(certs[i].cert, source))
			return &certs[i];
	return NULL;
}

/* {"path": p, "data": text} of a FILE argument. */
static int file_arg(json_t *req, const char *key, const char **path, const char **data,
		    size_t *len)
{
	json_t *o = json_object_get(req, key);
	json_t *d = json_object_get(o, "data");

	*path = json_string_value(json_object_get(o, "path"));
	*data = json_string_value(d);
	*len = json_string_length(d);
	return *path && *data ? 0 : -EINVAL;
}

/* Put data under path in st's bundle (mode and owner of the file it
 * replaces kept). */
static int put(struct stage *st, const char *path, const char *data, size_t len)
{
	const struct cfg_file *f = cfg_files_find(&st->b.files, path);

	if (cfg_files_put(&st->b.files, path, data, len, f ? f->mode : 0600) < 0)
		return -ENOMEM;
	return add_path(st, path);
}

json_t *adm_stage_cert(struct ctl *ctl, struct adm_client *c, json_t *req)
{
	const char *set = json_string_value(json_object_get(req, "set"));
	const char *cpath, *cdata, *kpath, *kdata;
	const struct tls_conf *tc = &ctl->cur.tc;
	const struct tls_certset *s = NULL;
	const struct tls_cert *old = NULL;
	const struct cfg_cert *cc;
	char kind[32] = "?", err[1024], list[600] = "";
	size_t clen, klen;
	struct stage *st;
	json_t *e;
	int t;

	if (!set || file_arg(req, "cert", &cpath, &cdata, &clen) < 0 ||
	    file_arg(req, "key", &kpath, &kdata, &klen) < 0)
		return jline_error("stage_cert needs \"set\", \"cert\" and \"key\" "
				   "({\"path\", \"data\"} each)");
	for (unsigned i = 0; i < tc->n_sets && !s; i++) {
		const char *n = tc->sets[i]->name;

		if (!strcmp(n, set) || (!strncmp(n, "listener ", 9) && !strcmp(n + 9, set)))
			s = tc->sets[i];
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", n);
	}
	if (!s)
		return jline_error("no cert set named %s (the sets: %s)", set, list);
	if (s->generated)
		return jline_error("%s: its certificates are generated at start-up; name files "
				   "for it in the configuration and reload", s->name);
	if ((t = pem_key_type(cdata, kind, sizeof(kind))) < 0)
		return kind[0] == '?' ? jline_error("%s: no PEM certificate in it", cpath)
				      : jline_error("%s: a %s key; sluice serves RSA, ECDSA P-256, "
						    "ECDSA P-384 and Ed25519", cpath, kind);
	list[0] = 0;
	for (unsigned i = 0; i < s->n; i++) {
		if ((int)s->cert[i].type == t)
			old = &s->cert[i];
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s %s", i ? ", " : "",
			 s->cert[i].kind, s->cert[i].source);
	}
	/* An ECDSA certificate on the other curve replaces the set's ECDSA one
	 * when the set has none on this curve: a renewal that changed curve
	 * (certbot --elliptic-curve secp384r1), which check then judges. */
	for (unsigned i = 0; i < s->n && !old; i++)
		if (ecdsa(s->cert[i].type) && ecdsa((enum tls_key_type)t))
			old = &s->cert[i];
	if (!old)
		return jline_error("cert set %s has no %s certificate to replace (it holds: %s); "
				   "stage replaces the certificate of the same key type", s->name,
				   kind, list);
	if (!(cc = cfg_cert_of(tc->c, s, old->source)))
		return jline_error("cert set %s: %s is not among its configured files", s->name,
				   old->source);
	if (!(st = stage_new(ctl, &e)))
		return e;
	if (!strcmp(cc->cert, cc->key)) {
		/* One file holds both: so does the new one. */
		char *both = malloc(clen + klen + 2);
		int rc;

		if (!both) {
			stage_free(st);
			return jline_error("out of memory");
		}
		memcpy(both, cdata, clen);
		both[clen] = '\n';
		memcpy(both + clen + 1, kdata, klen);
		rc = put(st, cc->cert, both, clen + 1 + klen);
		OPENSSL_clear_free(both, clen + klen + 2);
		if (rc < 0)
			goto nomem;
	} else if (put(st, cc->cert, cdata, clen) < 0 || put(st, cc->key, kdata, klen) < 0) {
		goto nomem;
	}
	if (bundle_validate(&st->b, err, sizeof(err)) < 0) {
		stage_free(st);
		return jline_error("refused, nothing staged (%s from %s, key from %s): %s", cc->cert,
				   cpath, kpath, err);
	}
	if (strcmp(old->kind, kind))
		snprintf(st->what, sizeof(st->what), "cert set %s: %s certificate %s <- %s (%s), "
			 "key %s <- %s", s->name, old->kind, cc->cert, cpath, kind, cc->key, kpath);
	else
		snprintf(st->what, sizeof(st->what), "cert set %s: %s certificate %s <- %s, key "
			 "%s <- %s", s->name, kind, cc->cert, cpath, cc->key, kpath);
	ctl->stage = st;
	ctl_log(LOG_INFO, "staged: %s (by %s)", st->what, c->who);
	return json_pack("{s:b,s:s,s:s,s:s,s:s,s:s}", "ok", 1, "staged", st->what, "set", s->name,
			 "kind", kind, "cert", cc->cert, "key", cc->key);
nomem:
	stage_free(st);
	return jline_error("out of memory");
}

json_t *adm_stage_policy(struct ctl *ctl, struct adm_client *c, json_t *req)
{
	const char *ln = json_string_value(json_object_get(req, "listener"));
	const char *pol = json_string_value(json_object_get(req, "policy"));
	const struct cfg *cf = ctl->cur.tc.c;
	const struct cfg_listener *l = NULL;
	char err[1024], *text;
	size_t len;
	unsigned at, p;
	struct stage *st;
	json_t *e;

	if (!ln || !pol)
		return jline_error("stage_policy needs \"listener\" and \"policy\"");
	for (p = 0; p < CFG_POLICY_COUNT; p++)
		if (!strcmp(cfg_policy_name((enum cfg_policy)p), pol))
			break;
	if (p == CFG_POLICY_COUNT)
		return jline_error("no policy named %s (modern, intermediate, legacy)", pol);
	for (unsigned i = 0; cf && i < cf->n_listeners; i++)
		if (!strcmp(cf->listeners[i].name, ln))
			l = &cf->listeners[i];
	if (!l)
		return jline_error("no listener named %s", ln);
	if (!ctl->path)
		return jline_error("sluice-control runs on the embedded default configuration: "
				   "there is no file to change");
	if (!(st = stage_new(ctl, &e)))
		return e;
	if (policy_edit(st->b.yaml, st->b.len, l->line, ln, pol, &text, &len, &at, err,
			sizeof(err)) < 0) {
		stage_free(st);
		return jline_error("%s", err);
	}
	free(st->b.yaml);
	st->b.yaml = text;
	st->b.len = len;
	st->yaml_changed = true;
	if (add_path(st, ctl->path) < 0) {
		stage_free(st);
		return jline_error("out of memory");
	}
	if (bundle_validate(&st->b, err, sizeof(err)) < 0) {
		stage_free(st);
		return jline_error("refused, nothing staged: %s", err);
	}
	snprintf(st->what, sizeof(st->what), "listener %s: policy %s -> %s (%s:%u)", ln,
		 cfg_policy_name(l->policy), pol, ctl->path, at);
	ctl->stage = st;
	ctl_log(LOG_INFO, "staged: %s (by %s)", st->what, c->who);
	return json_pack("{s:b,s:s,s:s,s:s,s:I}", "ok", 1, "staged", st->what, "listener", ln,
			 "policy", pol, "line", (json_int_t)at);
}

/* The report of impact's print function, as text (NULL: none). */
#if HAVE_IMPACT
static json_t *printed(void (*print)(FILE *, const json_t *), const json_t *r)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	json_t *s;

	if (!f)
		return json_null();
	print(f, r);
	fclose(f);
	s = jline_str(text);
	free(text);
	return s;
}
#endif

/*
 * What the staged change would break, from the dataplane's recorded hellos
 * (NULL when there are none to be had: why says so). A new reference:
 * {"valid", "breaks", "impact" (control/impact.h's result), "report"
 * (it in words), "note"}.
 */
static json_t *check_report(struct ctl *ctl, struct stage *st, json_t *hellos, const char *why)
{
#if HAVE_IMPACT
	const struct cfg_control *k = &ctl->cur.tc.c->control;
	json_t *empty = json_pack("{s:[]}", "hellos");
	json_t *r = impact_check(&ctl->cur.tc, &st->b.tc, hellos ? hellos : empty,
				 (long long)time(NULL), k->fingerprint_window, k->cert_margin_days);
	json_t *out;

	json_decref(empty);
	if (!r)
		return NULL;
	out = json_pack("{s:b,s:b,s:O,s:o}", "valid", 1, "breaks",
			!json_is_true(json_object_get(r, "ok")), "impact", r,
			"report", printed(impact_print, r));
	json_decref(r);
	if (out && !hellos)
		json_object_set_new(out, "note", json_sprintf("no recorded ClientHellos to check "
					"against (%s): only the refusals that need none", why));
	return out;
#else
	(void)ctl;
	(void)st;
	(void)hellos;
	(void)why;
	return json_pack("{s:b,s:b,s:s}", "valid", 1, "breaks", 0, "note",
			 "validated as the dataplane will load it; the who-would-break analysis "
			 "(control/impact.c) is not in this build");
#endif
}

/* check, and commit's check: they wait for the dataplane's hellos. */
struct check_ctx {
	struct ctl *ctl;
	unsigned long long client, stage_id;
	bool commit, force;
};

static void commit_load(struct check_ctx *k);

static void check_hellos_done(struct dp *dp, void *arg, json_t *a, const char *why)
{
	struct check_ctx *k = arg;
	struct ctl *ctl = k->ctl;
	struct stage *st = ctl->stage;
	json_t *hellos = a && json_is_true(json_object_get(a, "ok")) ? a : NULL;
	json_t *r;

	if (a && !hellos)
		why = json_string_value(json_object_get(a, "error")) ?: "the dataplane refused";
	if (!st || st->id != k->stage_id) {
		/* Only check can get here: commit holds the stage (ctl->op). */
		r = jline_error("the staged change was dropped meanwhile");
	} else if (!(r = check_report(ctl, st, hellos, why))) {
		r = jline_error("out of memory");
	} else if (!k->commit) {
		json_object_set_new(r, "ok", json_true());
		json_object_set_new(r, "staged", jline_str(st->what));
	} else if (json_is_true(json_object_get(r, "breaks")) && !k->force) {
		ctl->op = CTL_OP_NONE;
		json_object_set_new(r, "ok", json_false());
		json_object_set_new(r, "staged", jline_str(st->what));
		json_object_set_new(r, "error", json_string("refused: the staged change would break "
				    "the clients or certificates below; commit --force commits it "
				    "anyway"));
		ctl_log(LOG_WARNING, "commit refused: %s would break clients", st->what);
	} else {
		json_decref(r);
		commit_load(k);     /* answers and frees k */
		return;
	}
	if (k->commit && ctl->op == CTL_OP_COMMIT && (!st || st->id != k->stage_id))
		ctl->op = CTL_OP_NONE;
	adm_answer(ctl, k->client, r);
	json_decref(r);
	free(k);
}

/* Ask the dataplane for its recorded hellos, then go on in check_hellos_done. */
static json_t *check_start(struct ctl *ctl, struct adm_client *c, bool commit, bool force)
{
	struct check_ctx *k = calloc(1, sizeof(*k));
	json_t *req;

	if (!k)
		return jline_error("out of memory");
	k->ctl = ctl;
	k->client = c->id;
	k->stage_id = ctl->stage->id;
	k->commit = commit;
	k->force = force;
	req = json_pack("{s:s,s:I}", "cmd", "hellos", "since",
			(json_int_t)ctl->cur.tc.c->control.fingerprint_window);
	dp_request(&ctl->dp, req, DP_TIMEOUT_S, check_hellos_done, k);
	return NULL;
}

json_t *adm_check(struct ctl *ctl, struct adm_client *c, json_t *req)
{
	if (!ctl->stage)
		return jline_error("nothing is staged");
	return check_start(ctl, c, false, false);
}

json_t *adm_abort(struct ctl *ctl, struct adm_client *c, json_t *req)
{
	if (!ctl->stage)
		return jline_error("nothing is staged");
	if (ctl->op == CTL_OP_COMMIT)
		return jline_error("the staged change is being committed");
	ctl_log(LOG_INFO, "aborted: %s (by %s)", ctl->stage->what, c->who);
	stage_free(ctl->stage);
	ctl->stage = NULL;
	return json_pack("{s:b}", "ok", 1);
}

/* Write path's contents in b to disk, owner and mode of what is there. */
static int write_one(const struct bundle *b, const char *path, bool yaml, char *err,
		     size_t errlen)
{
	struct stat sb;
	const struct cfg_file *f = yaml ? NULL : cfg_files_find(&b->files, path);
	unsigned mode = 0600, uid = 0, gid = 0;

	if (stat(path, &sb) == 0) {
		mode = sb.st_mode & 07777;
		uid = sb.st_uid;
		gid = sb.st_gid;
	} else if (f) {
		mode = f->mode;
		uid = f->uid;
		gid = f->gid;
	}
	if (yaml)
		return writeback_file(path, b->yaml, b->len, mode, uid, gid, err, errlen);
	if (!f) {
		snprintf(err, errlen, "%s: not in the configuration's files", path);
		return -ENOENT;
	}
	return writeback_file(path, f->data, f->len, mode, uid, gid, err, errlen);
}

/* Put the running configuration's files st changed back on disk (the
 * first n of them). */
static void restore(struct ctl *ctl, struct stage *st, unsigned n)
{
	char err[512];

	for (unsigned i = 0; i < n; i++)
		if (write_one(&ctl->cur, st->paths[i], st->yaml_changed && i == 0, err,
			      sizeof(err)) < 0)
			ctl_log(LOG_ERR, "commit: cannot restore %s: %s", st->paths[i], err);
}

static void commit_done(struct dp *dp, void *arg, json_t *a, const char *why)
{
	struct check_ctx *k = arg;
	struct ctl *ctl = k->ctl;
	struct stage *st = ctl->stage;
	json_t *out;

	ctl->op = CTL_OP_NONE;
	if (a && json_is_true(json_object_get(a, "ok"))) {
		long long g = json_integer_value(json_object_get(a, "generation"));

		bundle_free(&ctl->cur);
		ctl->cur = st->b;
		memset(&st->b, 0, sizeof(st->b));
		ctl->dp.generation = g;
		ctl_record(ctl, true, NULL, g);
		ctl_log(LOG_INFO, "committed: %s, generation %lld", st->what, g);
		out = json_pack("{s:b,s:I,s:s}", "ok", 1, "generation", (json_int_t)g,
				"committed", st->what);
		stage_free(st);
		ctl->stage = NULL;
		ctl_changed(ctl);
	} else {
		const char *e = a ? json_string_value(json_object_get(a, "error")) : NULL;
		char msg[1200];

		restore(ctl, st, st->n_paths);
		snprintf(msg, sizeof(msg), "%s%s; the files are restored, the change stays "
			 "staged", a ? "the dataplane refused the load: " : "not loaded: ",
			 e ? e : why ? why : "no reason given");
		ctl_record(ctl, false, msg, 0);
		ctl_log(LOG_ERR, "commit failed: %s", msg);
		out = jline_error("%s", msg);
	}
	if (out) {
		adm_answer(ctl, k->client, out);
		json_decref(out);
	}
	free(k);
}

/* The check passed (or was forced): write the files back, then load. */
static void commit_load(struct check_ctx *k)
{
	struct ctl *ctl = k->ctl;
	struct stage *st = ctl->stage;
	char err[1024];
	json_t *load, *e;

	if (!(load = bundle_load_request(&st->b, k->force, err, sizeof(err))))
		goto refuse;
	for (unsigned i = 0; i < st->n_paths; i++)
		if (write_one(&st->b, st->paths[i], st->yaml_changed && i == 0, err,
			      sizeof(err)) < 0) {
			restore(ctl, st, i);
			jline_free_secret(load);
			goto refuse;
		}
	ctl_log(LOG_INFO, "commit%s: %s: files written, loading", k->force ? " --force" : "",
		st->what);
	dp_request_secret(&ctl->dp, load, DP_LOAD_TIMEOUT_S, commit_done, k);
	return;
refuse:
	ctl->op = CTL_OP_NONE;
	e = jline_error("nothing committed: %s", err);
	adm_answer(ctl, k->client, e);
	json_decref(e);
	free(k);
}

json_t *adm_commit(struct ctl *ctl, struct adm_client *c, json_t *req)
{
	bool force = json_is_true(json_object_get(req, "force"));

	if (!ctl->stage)
		return jline_error("nothing is staged");
	if (ctl->op != CTL_OP_NONE)
		return jline_error("a reload or commit is already in progress");
	if (!ctl->dp.attached)
		return jline_error("the dataplane is not attached: nothing committed");
	ctl_log(LOG_INFO, "commit%s: %s (by %s): checking", force ? " --force" : "",
		ctl->stage->what, c->who);
	ctl->op = CTL_OP_COMMIT;
	return check_start(ctl, c, true, force);
}
