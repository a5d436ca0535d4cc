/*
 * The per-client-address table (conn_limits.h). One lock per set of LIM_WAYS
 * entries, a spin lock: the accept path is not the per-packet path, the
 * critical section is a few dozen loads and stores with no call in it,
 * and two cores meet on one set only when two connections of addresses
 * that hash alike arrive at once. Atomics per counter would not do: a
 * verdict reads and updates three values of one entry together.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <syslog.h>

#include "conn_limits.h"
#include "log.h"

/* A leaky bucket: one connection adds LIM_UNIT; it drains `rate` units a
 * millisecond, so LIM_UNIT = 60000 makes `rate` the per-minute figure and
 * `rate` connections the burst it holds. */
#define LIM_UNIT 60000ull

struct lim_key {
	uint8_t addr[16];         /* IPv4 in the first 4 bytes; IPv6 masked */
	uint16_t listener;
	uint8_t family;
	uint8_t pad;
};

struct lim_ent {
	struct lim_key key;
	bool used;
	uint32_t gen;             /* moves on every reuse: old tickets miss */
	uint32_t sessions;
	uint32_t rate, hs_rate;   /* the drain rates last applied */
	uint64_t conn_level, conn_t;
	uint64_t hs_level, hs_t;
	uint64_t last_ms;
};

struct lim_set {
	atomic_flag lock;
	struct lim_ent e[LIM_WAYS];
};

static struct {
	struct lim_set *sets;
	uint32_t n_sets;          /* a power of two */
	uint64_t seed;
} L;

int limits_init(uint64_t max_sessions, unsigned entries)
{
	uint64_t n = entries ? entries : 4096;

	if (!entries) {
		/* Twice the sessions that can be open: at most half the entries
		 * are pinned by sessions, so a full set is rare. */
		while (n < 2 * max_sessions && n < (1u << 22))
			n <<= 1;
	}
	if (n < LIM_WAYS || (n & (n - 1)))
		return -EINVAL;
	limits_fini();
	L.n_sets = (uint32_t)(n / LIM_WAYS);
	if (!(L.sets = calloc(L.n_sets, sizeof(*L.sets))))
		return -ENOMEM;
	for (uint32_t i = 0; i < L.n_sets; i++)
		atomic_flag_clear(&L.sets[i].lock);
	/* Keyed: a client cannot choose addresses that fill one set. */
	if (getrandom(&L.seed, sizeof(L.seed), 0) != sizeof(L.seed))
		L.seed = (uint64_t)(uintptr_t)&L ^ 0x9e3779b97f4a7c15ull;
	return 0;
}

void limits_fini(void)
{
	free(L.sets);
	L.sets = NULL;
	L.n_sets = 0;
}

static uint64_t lim_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint32_t lim_hash(const struct lim_key *k)
{
	uint64_t w[3] = { 0 }, h = L.seed;

	memcpy(w, k, sizeof(*k));
	for (unsigned i = 0; i < 3; i++)
		h = lim_mix(h ^ w[i]);
	return (uint32_t)h;
}
_Static_assert(sizeof(struct lim_key) <= 24, "lim_hash reads the key as 3 words");

/* peer as a key: IPv4 as it is (also when mapped into IPv6), IPv6 masked
 * to prefix. False for another family. */
static bool lim_key_of(const struct sockaddr *peer, unsigned prefix, unsigned li,
		       struct lim_key *k)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

	memset(k, 0, sizeof(*k));
	k->listener = (uint16_t)li;
	if (peer->sa_family == AF_INET) {
		memcpy(k->addr, &((const struct sockaddr_in *)peer)->sin_addr, 4);
		k->family = 4;
		return true;
	}
	if (peer->sa_family != AF_INET6)
		return false;
	const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in6 *)peer)->sin6_addr;

	if (!memcmp(a, mapped, sizeof(mapped))) {
		memcpy(k->addr, a + 12, 4);
		k->family = 4;
		return true;
	}
	k->family = 6;
	if (prefix > 128)
		prefix = 128;
	memcpy(k->addr, a, prefix / 8);
	if (prefix % 8)
		k->addr[prefix / 8] = a[prefix / 8] & (uint8_t)(0xff00u >> (prefix % 8));
	return true;
}

static void lim_lock(struct lim_set *s)
{
	while (atomic_flag_test_and_set_explicit(&s->lock, memory_order_acquire))
		;
}

static void lim_unlock(struct lim_set *s)
{
	atomic_flag_clear_explicit(&s->lock, memory_order_release);
}

/* The bucket drained up to now at rate units per ms. */
static void lim_drain(uint64_t *level, uint64_t *t, uint32_t rate, uint64_t now)
{
	uint64_t d = now > *t ? (now - *t) * rate : 0;

	*level = *level > d ? *level - d : 0;
	if (now > *t)
		*t = now;
}

/* Nothing to remember: no session, both buckets empty. */
static bool lim_stale(struct lim_ent *e, uint64_t now)
{
	if (!e->used)
		return true;
	if (e->sessions)
		return false;
	lim_drain(&e->conn_level, &e->conn_t, e->rate, now);
	lim_drain(&e->hs_level, &e->hs_t, e->hs_rate, now);
	return e->conn_level == 0 && e->hs_level == 0;
}

enum lim_verdict limits_admit(const struct cfg_limits *lim, const struct cfg_addr_limits *al,
			      unsigned li, const struct sockaddr *peer, uint64_t now_ms,
			      struct lim_ticket *t)
{
	struct lim_key k;
	struct lim_set *set;
	struct lim_ent *e = NULL, *free_e = NULL, *old = NULL;
	enum lim_verdict v = LIM_OK;
	uint32_t set_i;

	t->slot = LIM_NONE;
	t->gen = 0;
	t->forgot = false;
	if (lim->n_exempt && cfg_limits_exempt(lim, peer))
		return LIM_EXEMPT;
	if (!L.sets || (!al->sessions && !al->rate && !al->handshakes) ||
	    !lim_key_of(peer, lim->ipv6_prefix, li, &k))
		return LIM_UNTRACKED;
	set_i = lim_hash(&k) & (L.n_sets - 1);
	set = &L.sets[set_i];
	lim_lock(set);
	for (unsigned w = 0; w < LIM_WAYS; w++) {
		struct lim_ent *x = &set->e[w];

		if (x->used && !memcmp(&x->key, &k, sizeof(k))) {
			e = x;
			break;
		}
		if (!free_e && lim_stale(x, now_ms))
			free_e = x;
		else if (!x->sessions && (!old || x->last_ms < old->last_ms))
			old = x;
	}
	if (!e) {
		if (!free_e && old) {
			free_e = old;
			t->forgot = true; /* its rate history goes */
		}
		if (!free_e) {
			lim_unlock(set);
			return LIM_UNTRACKED;
		}
		e = free_e;
		*e = (struct lim_ent){ .key = k, .used = true, .gen = e->gen + 1,
				       .conn_t = now_ms, .hs_t = now_ms };
	}
	e->last_ms = now_ms;
	lim_drain(&e->conn_level, &e->conn_t, e->rate, now_ms);
	lim_drain(&e->hs_level, &e->hs_t, e->hs_rate, now_ms);
	e->rate = al->rate;
	e->hs_rate = al->handshakes;
	if (al->sessions && e->sessions >= al->sessions) {
		v = LIM_SESSIONS;
	} else if (al->rate && e->conn_level + LIM_UNIT > (uint64_t)al->rate * LIM_UNIT) {
		v = LIM_RATE;
	} else {
		/* Only what is admitted counts against the rate: a client
		 * refused keeps its next minute. */
		e->conn_level += LIM_UNIT;
		e->sessions++;
		t->slot = set_i * LIM_WAYS + (uint32_t)(e - set->e);
		t->gen = e->gen;
	}
	lim_unlock(set);
	return v;
}

void limits_release(struct lim_ticket *t)
{
	struct lim_set *set;
	struct lim_ent *e;

	if (t->slot == LIM_NONE || !L.sets)
		return;
	set = &L.sets[t->slot / LIM_WAYS];
	e = &set->e[t->slot % LIM_WAYS];
	lim_lock(set);
	if (e->used && e->gen == t->gen && e->sessions)
		e->sessions--;
	lim_unlock(set);
	t->slot = LIM_NONE;
}

bool limits_handshake(const struct cfg_addr_limits *al, const struct lim_ticket *t,
		      uint64_t now_ms)
{
	struct lim_set *set;
	struct lim_ent *e;
	bool ok = true;

	if (t->slot == LIM_NONE || !L.sets || !al->handshakes)
		return true;
	set = &L.sets[t->slot / LIM_WAYS];
	e = &set->e[t->slot % LIM_WAYS];
	lim_lock(set);
	if (e->used && e->gen == t->gen) {
		lim_drain(&e->hs_level, &e->hs_t, e->hs_rate, now_ms);
		e->hs_rate = al->handshakes;
		if (e->hs_level + LIM_UNIT > (uint64_t)al->handshakes * LIM_UNIT)
			ok = false;
		else
			e->hs_level += LIM_UNIT;
		e->last_ms = now_ms;
	}
	lim_unlock(set);
	return ok;
}

int limits_nofile(const struct cfg *c, unsigned *out, char *err, size_t errlen)
{
	const struct cfg_limits *k = &c->limits;
	uint64_t need = (uint64_t)k->sessions_per_core * c->cores * 2 + LIM_NOFILE_RESERVE;
	uint64_t want = k->nofile ? k->nofile : need;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		snprintf(err, errlen, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return -errno;
	}
	if (want > rl.rlim_max) {
		/* Root may raise the hard limit too (CAP_SYS_RESOURCE). */
		struct rlimit up = { .rlim_cur = want, .rlim_max = want };

		if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
			*out = (unsigned)want;
			return 0;
		}
		if (k->nofile) {
			snprintf(err, errlen, "%s:%u: limits.nofile: %llu descriptors asked for, the "
				 "hard limit (RLIMIT_NOFILE) is %llu: raise it (systemd: "
				 "LimitNOFILE=%llu; a shell: ulimit -Hn %llu as root) or lower "
				 "limits.nofile", c->path, k->line, (unsigned long long)want,
				 (unsigned long long)rl.rlim_max, (unsigned long long)want,
				 (unsigned long long)want);
			return -EPERM;
		}
		/* What the defaults would like, not what was asked for: serve
		 * with what there is; stress mode holds at its share of it. */
		log_msg(LOG_WARNING, "event=nofile-low need=%llu hard=%llu hint=\"the limits "
			"(limits.sessions_per_core x cores x 2 + %u) need %llu descriptors; raise "
			"the hard limit (systemd: LimitNOFILE=%llu; ulimit -Hn) or set limits.nofile "
			"or lower limits.sessions_per_core\"", (unsigned long long)need,
			(unsigned long long)rl.rlim_max, LIM_NOFILE_RESERVE,
			(unsigned long long)need, (unsigned long long)need);
		want = rl.rlim_max;
	}
	/* Without limits.nofile the soft limit only ever goes up. */
	if (!k->nofile && want < rl.rlim_cur)
		want = rl.rlim_cur;
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		snprintf(err, errlen, "%s:%u: limits.nofile: cannot set RLIMIT_NOFILE to %llu: %s",
			 c->path, k->line, (unsigned long long)want, strerror(errno));
		return -errno;
	}
	*out = (unsigned)want;
	return 0;
}
