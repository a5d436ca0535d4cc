/*
 * libFuzzer target: the ClientHello parser on the input as the first bytes
 * of a connection, whole, then as two TCP segments would bring it (a prefix
 * first, split where a hash of the input says, then the whole again).
 * Invariants checked, besides the sanitizers':
 *   - the same input always gives the same answer and summary;
 *   - a prefix gives HELLO_MORE (with need beyond it) or the very answer of
 *     the whole: a decision never changes when more bytes come;
 *   - consumed <= len; every list keeps at most its maximum and no more than
 *     was sent, and says so when it kept less; every string is terminated;
 *     the fingerprints have their shape;
 *   - a rejection has a reason that is not the parser's own bug, an offset
 *     inside the input, and a sentence that fits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hello.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

#define CHECK_LIST(h, l, max) do {                                      \
	CHECK((l).kept <= (max) && (l).kept <= (l).n);                  \
	CHECK((l).kept == (l).n || ((h)->flags & HELLO_F_TRUNCATED));   \
} while (0)

static void check_str(const char *s, size_t size)
{
	CHECK(memchr(s, '\0', size) != NULL);
}

static void check(const struct hello *h, enum hello_result r, size_t len)
{
	char why[512];
	unsigned i;
	int n;

	switch (r) {
	case HELLO_OK:
		CHECK(h->consumed > 0 && h->consumed <= len);
		CHECK(h->records >= 1 && h->records <= HELLO_MAX_RECORDS);
		CHECK(h->msg_len <= HELLO_MAX_MSG);
		CHECK(h->err.reason == HELLO_R_NONE);
		CHECK_LIST(h, h->ciphers, HELLO_CIPHERS_MAX);
		CHECK_LIST(h, h->exts, HELLO_EXTS_MAX);
		CHECK_LIST(h, h->groups, HELLO_GROUPS_MAX);
		CHECK_LIST(h, h->point_formats, HELLO_POINT_FORMATS_MAX);
		CHECK_LIST(h, h->sigalgs, HELLO_SIGALGS_MAX);
		CHECK_LIST(h, h->sigalgs_cert, HELLO_SIGALGS_MAX);
		CHECK_LIST(h, h->versions, HELLO_VERSIONS_MAX);
		CHECK_LIST(h, h->key_shares, HELLO_KEY_SHARES_MAX);
		CHECK_LIST(h, h->alpn, HELLO_ALPN_MAX);
		for (i = 0; i < h->alpn.kept; i++) {
			check_str(h->alpn.v[i].name, sizeof(h->alpn.v[i].name));
			CHECK(h->alpn.v[i].len > 0);
		}
		check_str(h->sni, sizeof(h->sni));
		CHECK(strlen(h->sni) == h->sni_len);
		CHECK(!h->sni_len || (h->flags & HELLO_F_SNI));
		check_str(h->ja3, sizeof(h->ja3));
		CHECK(strlen(h->ja3) == HELLO_JA3_MAX - 1 || !(h->flags & HELLO_F_JA3_TRUNCATED));
		CHECK(strlen(h->ja3_md5) == 32);
		CHECK(strlen(h->ja4) == HELLO_JA4_LEN);
		CHECK(h->ja4[0] == 't' && h->ja4[10] == '_' && h->ja4[23] == '_');
		CHECK(h->ja4[3] == ((h->flags & HELLO_F_SNI) ? 'd' : 'i'));
		break;
	case HELLO_MORE:
		CHECK(h->need > len);
		break;
	case HELLO_NOT_TLS:
	case HELLO_BAD:
		CHECK(h->err.reason > HELLO_R_NONE && h->err.reason < HELLO_R_COUNT);
		CHECK(h->err.reason != HELLO_R_INTERNAL);
		CHECK(h->err.offset <= len);
		n = hello_explain(h, why, sizeof(why));
		CHECK(n > 0 && (size_t)n < sizeof(why) && strlen(why) == (size_t)n);
		CHECK(strchr(why, '%') == NULL);
		break;
	default:
		abort();
	}
}

static int same(const struct hello *a, enum hello_result ra, const struct hello *b,
		enum hello_result rb)
{
	if (ra != rb)
		return 0;
	if (ra == HELLO_OK)
		return !memcmp(a, b, sizeof(*a));       /* cleared first: no stray padding */
	return a->err.reason == b->err.reason && a->err.ext == b->err.ext &&
	       a->err.a == b->err.a && a->err.b == b->err.b && a->err.c == b->err.c &&
	       a->err.offset == b->err.offset;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct hello whole, again, part;
	enum hello_result rw, ra, rp;
	enum hello_reason why;
	uint32_t hash = 2166136261u;    /* FNV-1a: the split point */
	size_t i, k;

	rw = hello_parse(data, size, &whole, &why);
	CHECK(why == whole.err.reason);
	check(&whole, rw, size);

	for (i = 0; i < size; i++)
		hash = (hash ^ data[i]) * 16777619u;
	k = size ? hash % (size + 1) : 0;

	rp = hello_parse(data, k, &part, NULL);
	check(&part, rp, k);
	if (rp != HELLO_MORE && !same(&part, rp, &whole, rw))
		abort();
	ra = hello_parse(data, size, &again, NULL);
	CHECK(same(&again, ra, &whole, rw));
	return 0;
}
