/*
 * libFuzzer target: the input as a ClientHello (hello_parse), then certsel
 * against fixed cert sets of every shape under every policy, and the same
 * bytes as text for explain_input (hex, and as the fields of a form split
 * at newlines). Invariants checked, besides the sanitizers':
 *   - a verdict either names a certificate that succeeded and is a
 *     candidate, with a version the policy allows and a suite it lists,
 *     or a FAIL rule, with a certificate for it unless the set is empty;
 *   - every per-certificate rule is OK or FAIL, never a note;
 *   - explain and reason write terminated text, of the length they report,
 *     with no template left unexpanded (unless the client's SNI has a brace);
 *   - explain_input never crashes and always says why it refuses.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "certsel.h"
#include "explain_input.h"
#include "hello.h"
#include "policy.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const char *const names[] = { "mail.example.com", "*.example.org" };

#define C(k, b, s, d) { .label = #k, .key = CERTSEL_KEY_##k, .bits = b, .issuer_sig = s, \
	.is_default = d, .names = names, .n_names = 2, .not_before = 1, .not_after = 2000000000 }

static const struct certsel_cert sets[][4] = {
	{ C(RSA, 2048, 0x0401, 1), C(P256, 0, 0x0403, 1), C(P384, 0, 0x0503, 0), C(ED25519, 0, 0x0807, 0) },
	{ C(P384, 0, 0x0201, 1), C(RSA, 1024, 0x0804, 0), C(P521, 0, 0x0603, 1), C(RSA, 4096, 0x0000, 0) },
};

static void check_text(int n, const char *buf, size_t len)
{
	CHECK(n >= 0);
	CHECK(memchr(buf, 0, len));
	CHECK((size_t)n < len ? strlen(buf) == (size_t)n : strlen(buf) == len - 1);
}

static void judge(const struct hello *h)
{
	static char text[65536];
	unsigned s, p, n, i;

	for (s = 0; s < ARRAY_SIZE(sets); s++) {
		for (n = 0; n <= 4; n++) {
			for (p = 0; p < POLICY_COUNT; p++) {
				const struct policy *pol = policy_get(p);
				struct certsel_verdict v;
				int rc = certsel_choose(h, sets[s], n, pol, 1700000000, &v), k;

				if (rc == 0) {
					CHECK(v.chosen >= 0 && (unsigned)v.chosen < n);
					CHECK(v.cert[v.chosen].rule == CERTSEL_R_OK);
					CHECK(v.cert[v.chosen].considered);
					CHECK(v.version >= pol->min_version && v.version <= pol->max_version);
					CHECK(policy_has_suite(pol, v.suite));
				} else {
					CHECK(rc == -ENOENT && v.chosen == -1);
					CHECK(certsel_rule_kind(v.rule) == CERTSEL_FAIL);
					CHECK(n == 0 || (v.rule_cert >= 0 && (unsigned)v.rule_cert < n));
				}
				for (i = 0; i < n; i++)
					CHECK(certsel_rule_kind(v.cert[i].rule) <= CERTSEL_FAIL);
				k = certsel_explain(h, sets[s], n, pol, &v, text, sizeof(text));
				check_text(k, text, sizeof(text));
				CHECK(!strchr(text, '{') || strchr(h->sni, '{'));  /* the SNI is the client's */
				k = certsel_explain(h, sets[s], n, pol, &v, text, 17);
				check_text(k, text, 17);
				k = certsel_reason(h, sets[s], n, pol, &v, -1, text, sizeof(text));
				check_text(k, text, sizeof(text));
			}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char text[EXPLAIN_BYTES_MAX * 3];
	struct hello h;
	char err[512], *lines[8], *q;
	struct explain_fields f;
	unsigned nl = 0;

	if (hello_parse(data, size, &h, NULL) == HELLO_OK)
		judge(&h);
	if (size >= sizeof(text))
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	if (explain_hex(text, &h, err, sizeof(err)) == 0)
		judge(&h);
	else
		CHECK(err[0]);
	/* The same text as a form: one field per line. */
	for (q = text; nl < ARRAY_SIZE(lines); nl++) {
		lines[nl] = q;
		q = strchr(q, '\n');
		if (!q)
			break;
		*q++ = 0;
	}
	while (++nl < ARRAY_SIZE(lines))
		lines[nl] = NULL;
	f = (struct explain_fields){ lines[0], lines[1], lines[2], lines[3], lines[4], lines[5],
				     lines[6], lines[7] };
	if (explain_fields(&f, &h, err, sizeof(err)) == 0)
		judge(&h);
	else
		CHECK(err[0]);
	return 0;
}
