/*
 * A configuration with its certificates loaded and proved (conf.h): the
 * named cert sets, then each TLS listener's own set when it names none,
 * each certificate proved under every policy a listener may use it with
 * (rule 2.5).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "resume.h"
#include "tls.h"

/* A new entry of tc->sets; NULL when out of memory. */
static struct tls_certset *conf_new_set(struct tls_conf *tc)
{
	struct tls_certset **v = realloc(tc->sets, (tc->n_sets + 1) * sizeof(*v));

	if (!v)
		return NULL;
	tc->sets = v;
	if (!(v[tc->n_sets] = calloc(1, sizeof(**v))))
		return NULL;
	return v[tc->n_sets++];
}

/* Rule 2.5: prove each certificate of set usable under policy before
 * STARTTLS is offered with it. */
static int probe_set(const struct tls_certset *set, enum cfg_policy policy, char *err,
		     size_t errlen)
{
	for (unsigned k = 0; k <= set->n; k++) {
		SSL_CTX *probe = tls_ctx_new(NULL, set, k ? k - 1 : TLS_CERT_ANY, policy,
					     err, errlen);

		if (!probe)
			return -EINVAL;
		SSL_CTX_free(probe);
	}
	return 0;
}

/* The sets of listener i: its named ones, or its own (generated if it
 * names no certificate), each proved under the policies it may use. */
static int conf_listener(struct tls_conf *tc, unsigned i, char *err, size_t errlen)
{
	const struct cfg *c = tc->c;
	const struct cfg_listener *cl = &c->listeners[i];
	struct tls_conf_listener *l = &tc->l[i];
	int rc;

	if (cl->tls == CFG_TLS_OFF)
		return 0;
	l->n_sets = cl->n_cert_sets ? cl->n_cert_sets : 1;
	if (!(l->set_ids = calloc(l->n_sets, sizeof(*l->set_ids))))
		return -ENOMEM;
	if (cl->n_cert_sets) {
		for (unsigned j = 0; j < cl->n_cert_sets; j++)
			l->set_ids[j] = (uint16_t)(cl->sets[j] - c->cert_sets);
	} else {
		struct tls_certset *set = conf_new_set(tc);

		if (!set)
			return -ENOMEM;
		l->set_ids[0] = (uint16_t)(tc->n_sets - 1);
		if ((rc = tls_certset_load_listener(c, cl, set, err, errlen)) < 0)
			return rc;
	}
	l->policies = (uint8_t)(1u << cl->policy);
	for (unsigned j = 0; j < cl->n_policy_rules; j++)
		l->policies |= (uint8_t)(1u << cl->policy_by_network[j].policy);
	for (unsigned j = 0; j < l->n_sets; j++) {
		struct tls_certset *set = tc->sets[l->set_ids[j]];

		for (unsigned p = 0; p < CFG_POLICY_COUNT; p++)
			if ((l->policies & (1u << p)) && !(set->policies & (1u << p)) &&
			    (rc = probe_set(set, (enum cfg_policy)p, err, errlen)) < 0)
				return rc;
		set->policies |= l->policies;
	}
	return 0;
}

static int conf_fill(struct tls_conf *tc, const struct cfg_files *files, char *err,
		     size_t errlen)
{
	struct cfg *c = tc->c;
	int rc;

	c->files = files;
	if (!(tc->l = calloc(c->n_listeners ? c->n_listeners : 1, sizeof(*tc->l))))
		return -ENOMEM;
	for (unsigned i = 0; i < c->n_cert_sets; i++) {
		struct tls_certset *set = conf_new_set(tc);

		if (!set)
			return -ENOMEM;
		if ((rc = tls_certset_load(c, &c->cert_sets[i], set, err, errlen)) < 0)
			return rc;
	}
	for (unsigned i = 0; i < c->n_listeners; i++)
		if ((rc = conf_listener(tc, i, err, errlen)) < 0)
			return rc;
	if ((rc = tls_ticket_file_check(c, err, errlen)) < 0) /* mode, format */
		return rc;
	c->files = NULL; /* the bundle is the caller's: nothing reads it later */
	return 0;
}

static int conf_done(struct tls_conf *out, int rc, char *err, size_t errlen)
{
	if (rc < 0) {
		if (!err[0])
			snprintf(err, errlen, "%s", strerror(-rc));
		tls_conf_free(out);
	}
	return rc;
}

int tls_conf_load(const char *yaml, size_t len, const char *name, const struct cfg_files *files,
		  struct tls_conf *out, char *err, size_t errlen)
{
	int rc;

	memset(out, 0, sizeof(*out));
	err[0] = 0;
	if ((rc = cfg_load_string(yaml, len, name, &out->c, err, errlen)) < 0)
		return conf_done(out, rc, err, errlen);
	return conf_done(out, conf_fill(out, files, err, errlen), err, errlen);
}

int tls_conf_load_file(const char *path, struct tls_conf *out, char *err, size_t errlen)
{
	int rc;

	memset(out, 0, sizeof(*out));
	err[0] = 0;
	if ((rc = cfg_load_file(path, &out->c, err, errlen)) < 0)
		return conf_done(out, rc, err, errlen);
	return conf_done(out, conf_fill(out, NULL, err, errlen), err, errlen);
}

void tls_conf_free(struct tls_conf *tc)
{
	for (unsigned i = 0; tc->l && tc->c && i < tc->c->n_listeners; i++)
		free(tc->l[i].set_ids);
	free(tc->l);
	for (unsigned i = 0; i < tc->n_sets; i++) {
		tls_certset_free(tc->sets[i]);
		free(tc->sets[i]);
	}
	free(tc->sets);
	cfg_free(tc->c);
	memset(tc, 0, sizeof(*tc));
}
