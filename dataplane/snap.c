/* Configuration snapshots (snap.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lslot.h"
#include "proto/proto.h"
#include "session/backend.h"
#include "session/session.h"
#include "snap.h"
#include "tls.h"

static struct {
	_Atomic(struct snap *) cur;
	struct snap *retired;        /* replaced, waiting for the cores */
	uint64_t last_gen;
	unsigned n_cores;
	_Atomic uint64_t seen[SNAP_CORES_MAX]; /* the generation each core entered */
} S;

/* The metrics' mode label of a listener (docs/metrics.md). */
static const char *lslot_mode(enum cfg_tls t)
{
	return t == CFG_TLS_IMPLICIT ? "implicit" : t == CFG_TLS_OFF ? "plain" : "starttls";
}

/* "mail: ecdsa-p256,rsa-2048; other: ..." */
static void describe_sets(struct listener *l, const struct tls_conf *tc)
{
	size_t o = 0;

	l->certs_desc[0] = 0;
	for (unsigned i = 0; i < l->n_sets && o < sizeof(l->certs_desc); i++) {
		const struct tls_certset *set = l->sets[i];
		bool plain = set->generated || tc->c->listeners[l->idx].n_cert_sets == 0;

		o += (size_t)snprintf(l->certs_desc + o, sizeof(l->certs_desc) - o, "%s%s%s",
				      i ? "; " : "", set->generated ? "generated " : "",
				      plain ? "" : set->name);
		for (unsigned j = 0; j < set->n && o < sizeof(l->certs_desc); j++)
			o += (size_t)snprintf(l->certs_desc + o, sizeof(l->certs_desc) - o, "%s%s",
					      j ? "," : (plain ? "" : ": "),
					      set->cert[set->order[j]].kind);
	}
}

static void snap_free(struct snap *s)
{
	if (!s)
		return;
	for (unsigned i = 0; s->listeners && i < s->n_listeners; i++)
		free(s->listeners[i].sets);
	free(s->listeners);
	tlsw_ctxs_free(s->ctxs);
	free(s->lfd);
	if (s->keep_cfg) {
		for (unsigned i = 0; s->tc.l && i < s->n_listeners; i++)
			free(s->tc.l[i].set_ids);
		free(s->tc.l);
		s->tc.l = NULL;
		s->tc.c = NULL; /* the stack and the pools still point into it */
	}
	tls_conf_free(&s->tc);
	free(s);
}

void snap_discard(struct snap *s)
{
	snap_free(s);
}

struct snap *snap_build(struct tls_conf *tc, struct be_pool *pools, unsigned n_pools,
			char *err, size_t errlen)
{
	struct snap *s = calloc(1, sizeof(*s));
	const struct cfg *c = tc->c;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->tc = *tc;
	memset(tc, 0, sizeof(*tc));
	s->loaded_s = (long long)time(NULL);
	s->n_listeners = c->n_listeners;
	if (!(s->listeners = calloc(c->n_listeners ? c->n_listeners : 1, sizeof(*s->listeners))))
		goto oom;
	for (unsigned i = 0; i < c->n_listeners; i++) {
		struct listener *l = &s->listeners[i];
		const struct cfg_listener *cl = &c->listeners[i];
		const struct tls_conf_listener *tl = &s->tc.l[i];

		l->cfg = cl;
		l->idx = i;
		if (!(l->ops = proto_get(cl->protocol))) {
			snprintf(err, errlen, "%s:%u: listeners[%u].protocol: %s is not implemented yet",
				 c->path, cl->line, i, cfg_proto_name(cl->protocol));
			goto fail;
		}
		l->slot = lslot_for(cl->name, l->ops->name, lslot_mode(cl->tls));
		for (unsigned j = 0; j < n_pools; j++)
			if (!strcmp(pools[j].cfg->name, cl->be->name))
				l->pool = &pools[j];
		if (!l->pool) {
			snprintf(err, errlen, "%s:%u: listeners[%u].backend: backend '%s' is not "
				 "one the running sluice started with: a new backend needs a "
				 "restart", c->path, cl->line, i, cl->be->name);
			goto fail;
		}
		if (!tl->n_sets)
			continue;
		l->n_sets = tl->n_sets;
		l->set_ids = tl->set_ids;
		if (!(l->sets = calloc(l->n_sets, sizeof(*l->sets))))
			goto oom;
		for (unsigned j = 0; j < l->n_sets; j++)
			l->sets[j] = s->tc.sets[tl->set_ids[j]];
		l->tls_available = true;
		describe_sets(l, &s->tc);
	}
	if (!(s->ctxs = tlsw_ctxs_build(s->tc.sets, s->tc.n_sets, err, errlen)))
		goto fail;
	if (!(s->lfd = calloc((size_t)S.n_cores * c->n_listeners + 1, sizeof(int))))
		goto oom;
	return s;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	tlsw_ctxs_free(s->ctxs);
	free(s->lfd);
	/* tc goes back to the caller, as it came */
	*tc = s->tc;
	memset(&s->tc, 0, sizeof(s->tc));
	for (unsigned i = 0; s->listeners && i < s->n_listeners; i++)
		free(s->listeners[i].sets);
	free(s->listeners);
	free(s);
	return NULL;
}

uint64_t snap_next_gen(void)
{
	return S.last_gen + 1;
}

uint64_t snap_min_seen(void)
{
	uint64_t m = UINT64_MAX;

	for (unsigned i = 0; i < S.n_cores; i++) {
		uint64_t g = atomic_load_explicit(&S.seen[i], memory_order_acquire);

		if (g < m)
			m = g;
	}
	return m;
}

struct snap *snap_current(void)
{
	return atomic_load_explicit(&S.cur, memory_order_acquire);
}

void snap_publish(struct snap *s)
{
	struct snap *old = atomic_load(&S.cur);

	s->gen = ++S.last_gen;
	atomic_store_explicit(&S.cur, s, memory_order_release);
	if (old) {
		old->next_retired = S.retired;
		S.retired = old;
	}
}

void snap_cores(unsigned n)
{
	S.n_cores = n < SNAP_CORES_MAX ? n : SNAP_CORES_MAX;
}

struct snap *snap_enter(unsigned core)
{
	struct snap *s = atomic_load_explicit(&S.cur, memory_order_acquire);

	if (atomic_load_explicit(&S.seen[core], memory_order_relaxed) != s->gen)
		atomic_store_explicit(&S.seen[core], s->gen, memory_order_release);
	return s;
}

/* Can any core still reach s? A core that has entered a newer generation
 * can no longer take s for a new session; the sessions it gave s count in
 * s->refs. A core still at s's generation (or older: between its load of
 * the pointer and its store of the generation) might. */
static bool snap_reachable(struct snap *s)
{
	for (unsigned i = 0; i < S.n_cores; i++) {
		if (atomic_load_explicit(&S.seen[i], memory_order_acquire) <= s->gen)
			return true;
		if (atomic_load_explicit(&s->refs[i], memory_order_acquire))
			return true;
	}
	return false;
}

unsigned snap_reclaim(void)
{
	struct snap **pp = &S.retired;
	unsigned left = 0;

	while (*pp) {
		struct snap *s = *pp;

		if (snap_reachable(s)) {
			left++;
			pp = &s->next_retired;
			continue;
		}
		*pp = s->next_retired;
		snap_free(s);
	}
	return left;
}

void snap_free_all(void)
{
	struct snap *s = atomic_exchange(&S.cur, NULL);

	snap_free(s);
	while ((s = S.retired)) {
		S.retired = s->next_retired;
		snap_free(s);
	}
}
