/*
 * The ClientHello parser (see hello.h). Three steps, each call, from the
 * first byte:
 *
 *   1. framing: TLS records (RFC 8446 5.1) or the SSLv2-compatible header
 *      (RFC 5246 E.2). Decides "not TLS" from the first bytes, finds the
 *      handshake message across records without copying it, and says
 *      HELLO_MORE until all of it is there;
 *   2. the ClientHello body and its extensions (RFC 8446 4.1.2, 4.2; RFC
 *      5246 7.4.1.2), read in place through a cursor that steps over record
 *      headers. Every length is checked against its container before a byte
 *      of it is read; the first problem found ends the parse with a reason;
 *   3. the fingerprints (fingerprint.c), over the full lists that step 2
 *      copied into a scratch array on the stack.
 *
 * The scratch array cannot fill up: every entry stored in it stands for at
 * least two bytes of the message, but for the point formats (one byte each,
 * at most 255, in the one extension allowed to hold them).
 */
#include <stdio.h>
#include <string.h>

#include "fingerprint.h"
#include "hello.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define REC_HDR          5      /* content type, version, length */
#define REC_MAX          16384  /* TLSPlaintext.length limit (RFC 8446 5.1) */
#define CT_HANDSHAKE     22
#define HT_CLIENT_HELLO  1
#define SCRATCH_N        (HELLO_MAX_MSG / 2 + 256)

/* Extension types parsed here (IANA TLS ExtensionType Values). */
enum {
	EXT_SERVER_NAME = 0, EXT_STATUS_REQUEST = 5, EXT_SUPPORTED_GROUPS = 10,
	EXT_EC_POINT_FORMATS = 11, EXT_SIGNATURE_ALGORITHMS = 13, EXT_ALPN = 16,
	EXT_PADDING = 21, EXT_ENCRYPT_THEN_MAC = 22, EXT_EXTENDED_MASTER_SECRET = 23,
	EXT_SESSION_TICKET = 35, EXT_PRE_SHARED_KEY = 41, EXT_EARLY_DATA = 42,
	EXT_SUPPORTED_VERSIONS = 43, EXT_PSK_KEY_EXCHANGE_MODES = 45,
	EXT_POST_HANDSHAKE_AUTH = 49, EXT_SIGNATURE_ALGORITHMS_CERT = 50,
	EXT_KEY_SHARE = 51, EXT_RENEGOTIATION_INFO = 0xff01,
};

/*
 * Reads the handshake message where it lies, across the records that carry
 * it, stepping over their headers (checked by the framing step). It never
 * reads at or past end: such a read gives 0 and sets over, which the parser
 * reports as its own bug.
 */
struct rd {
	const uint8_t *buf;
	size_t wpos;            /* input offset of the next byte */
	size_t wleft;           /* bytes of its record left from wpos */
	size_t off, end;        /* message offset of the next byte; its end */
	bool over;
};

struct ctx {
	struct hello *h;
	struct rd r;
	int ext;                /* extension being parsed, or -1 */
	struct fp_lists fp;     /* what the fingerprints need */
	size_t lo, hi;          /* scratch: v[0, lo) the ciphers, then the
				   extension types; v[hi, SCRATCH_N) lists */
	uint16_t v[SCRATCH_N];
	uint64_t seen[65536 / 64]; /* extension types met */
};

static void rd_next_record(struct rd *r)
{
	r->wleft = (size_t)r->buf[r->wpos + 3] << 8 | r->buf[r->wpos + 4];
	r->wpos += REC_HDR;
}

static uint8_t rd_u8(struct rd *r)
{
	if (r->off >= r->end) {
		r->over = true;
		return 0;
	}
	if (!r->wleft)
		rd_next_record(r);
	r->wleft--;
	r->off++;
	return r->buf[r->wpos++];
}

static uint16_t rd_u16(struct rd *r)
{
	uint16_t v = (uint16_t)(rd_u8(r) << 8);

	return v | rd_u8(r);
}

static void rd_skip(struct rd *r, size_t n)
{
	if (n > r->end - r->off) {
		r->over = true;
		n = r->end - r->off;
	}
	while (n) {
		size_t k;

		if (!r->wleft)
			rd_next_record(r);
		k = n < r->wleft ? n : r->wleft;
		r->wpos += k;
		r->wleft -= k;
		r->off += k;
		n -= k;
	}
}

/* Note the problem found at input offset off; returns -1 to pass on. */
static int fail_at(struct ctx *c, size_t off, enum hello_reason why,
		   unsigned long a, unsigned long b, unsigned long cc)
{
	struct hello_err *e = &c->h->err;

	e->reason = why;
	e->ext = c->ext;
	e->a = a;
	e->b = b;
	e->c = cc;
	e->offset = off;
	return -1;
}

static int fail(struct ctx *c, enum hello_reason why, unsigned long a, unsigned long b,
		unsigned long cc)
{
	return fail_at(c, c->r.wpos, why, a, b, cc);
}

static void grease(struct ctx *c, uint16_t v)
{
	if (hello_is_grease(v))
		c->h->flags |= HELLO_F_GREASE;
}

/* Append to a summary list: count it, keep it while there is room. */
#define LIST_ADD(c, l, x) do {                          \
	if ((l).kept < ARRAY_SIZE((l).v))               \
		(l).v[(l).kept++] = (x);                \
	else                                            \
		(c)->h->flags |= HELLO_F_TRUNCATED;     \
	(l).n++;                                        \
} while (0)

/* n scratch entries below the top, or NULL (never, see the top of file). */
static uint16_t *scratch_top(struct ctx *c, size_t n)
{
	if (n > c->hi - c->lo)
		return NULL;
	c->hi -= n;
	return c->v + c->hi;
}

static int scratch_push(struct ctx *c, uint16_t v)
{
	if (c->lo == c->hi)
		return fail(c, HELLO_R_INTERNAL, c->lo, c->hi, 0);
	c->v[c->lo++] = v;
	return 0;
}

static int add_cipher(struct ctx *c, uint16_t v)
{
	if (scratch_push(c, v))
		return -1;
	c->fp.nciphers++;
	LIST_ADD(c, c->h->ciphers, v);
	grease(c, v);
	if (v == 0x00ff)
		c->h->flags |= HELLO_F_RENEG_SCSV;
	else if (v == 0x5600)
		c->h->flags |= HELLO_F_FALLBACK_SCSV;
	return 0;
}

/* ------------------------------------------------------------ extensions */

/*
 * The vector that makes up an extension: a length field of lw bytes, then
 * exactly that many bytes to the end of the extension, a multiple of esz,
 * not empty unless empty_ok. Sets *n to its length.
 */
static int ext_list(struct ctx *c, size_t len, unsigned lw, unsigned esz, bool empty_ok,
		    size_t *n)
{
	if (len < lw)
		return fail(c, HELLO_R_EXT_SHORT, len, lw, 0);
	*n = lw == 1 ? rd_u8(&c->r) : rd_u16(&c->r);
	if (*n > len - lw)
		return fail(c, HELLO_R_EXT_LIST_OVERRUN, *n, len, lw);
	if (*n < len - lw)
		return fail(c, HELLO_R_EXT_LIST_TRAILING, *n, len, lw);
	if (!*n && !empty_ok)
		return fail(c, HELLO_R_EXT_LIST_EMPTY, 0, 0, 0);
	if (*n % esz)
		return fail(c, HELLO_R_EXT_LIST_ODD, *n, esz, 0);
	return 0;
}

/* The fixed header (hw bytes) of the next entry of a list, *left bytes. */
static int entry_head(struct ctx *c, size_t *left, unsigned hw)
{
	if (*left < hw)
		return fail(c, HELLO_R_ENTRY_SHORT, *left, hw, 0);
	*left -= hw;
	return 0;
}

/* The opaque<min..> of elen bytes that follows an entry header. */
static int entry_body(struct ctx *c, size_t *left, size_t elen, size_t min)
{
	if (elen > *left)
		return fail(c, HELLO_R_ENTRY_OVERRUN, elen, *left, 0);
	if (!elen)
		return fail(c, HELLO_R_ENTRY_EMPTY, 0, 0, 0);
	if (elen < min)
		return fail(c, HELLO_R_ENTRY_TOO_SHORT, elen, min, 0);
	*left -= elen;
	return 0;
}

/*
 * A non-empty list of 2-byte values with an lw-byte length: kept in the
 * summary (kept[], up to max; *n counts all) and copied whole to a scratch
 * block *all, *nall, which the caller keeps for the fingerprints or frees by
 * restoring c->hi.
 */
static int u16_list(struct ctx *c, size_t len, unsigned lw, uint16_t *kept, unsigned *n,
		    unsigned *nkept, size_t max, uint16_t **all, size_t *nall)
{
	size_t ln, i;

	if (ext_list(c, len, lw, 2, false, &ln))
		return -1;
	if (!(*all = scratch_top(c, ln / 2)))
		return fail(c, HELLO_R_INTERNAL, c->lo, c->hi, 0);
	*nall = ln / 2;
	for (i = 0; i < ln / 2; i++) {
		uint16_t v = rd_u16(&c->r);

		grease(c, v);
		(*all)[i] = v;
		if (*nkept < max)
			kept[(*nkept)++] = v;
		else
			c->h->flags |= HELLO_F_TRUNCATED;
		(*n)++;
	}
	return 0;
}

#define U16_LIST(c, len, lw, l, all, nall) \
	u16_list(c, len, lw, (l).v, &(l).n, &(l).kept, ARRAY_SIZE((l).v), all, nall)

/* server_name (RFC 6066 3): at most one host_name, 1 to 255 bytes, no NUL. */
static int ext_server_name(struct ctx *c, size_t len)
{
	struct hello *h = c->h;
	size_t left, l, i;
	bool host = false;

	if (ext_list(c, len, 2, 1, false, &left))
		return -1;
	h->flags |= HELLO_F_SNI;
	c->fp.sni = 1;
	while (left) {
		uint8_t type;

		if (entry_head(c, &left, 3))
			return -1;
		type = rd_u8(&c->r);
		l = rd_u16(&c->r);
		if (entry_body(c, &left, l, 1))
			return -1;
		if (type != 0) {        /* no other NameType defined: step over */
			rd_skip(&c->r, l);
			continue;
		}
		if (host)
			return fail(c, HELLO_R_SNI_DUPLICATE, 0, 0, 0);
		host = true;
		if (l > HELLO_SNI_MAX)
			return fail(c, HELLO_R_SNI_TOO_LONG, l, HELLO_SNI_MAX, 0);
		for (i = 0; i < l; i++)
			if (!(h->sni[i] = (char)rd_u8(&c->r)))
				return fail(c, HELLO_R_SNI_NUL, i, 0, 0);
		h->sni[l] = '\0';
		h->sni_len = (uint16_t)l;
	}
	return 0;
}

/* ALPN (RFC 7301 3.1): protocol names of 1 to 255 bytes, at least one. */
static int ext_alpn(struct ctx *c, size_t len)
{
	struct hello *h = c->h;
	size_t left, l, i;

	if (ext_list(c, len, 2, 1, false, &left))
		return -1;
	h->flags |= HELLO_F_ALPN;
	while (left) {
		struct hello_alpn *p = NULL;
		uint8_t first = 0, last = 0;

		if (entry_head(c, &left, 1))
			return -1;
		l = rd_u8(&c->r);
		if (entry_body(c, &left, l, 1))
			return -1;
		if (h->alpn.kept < HELLO_ALPN_MAX)
			p = &h->alpn.v[h->alpn.kept++];
		else
			h->flags |= HELLO_F_TRUNCATED;
		for (i = 0; i < l; i++) {
			last = rd_u8(&c->r);
			if (!i)
				first = last;
			if (p && i < HELLO_ALPN_NAME_MAX)
				p->name[i] = (char)last;
		}
		if (p)
			p->len = (uint8_t)l;    /* name[] was zeroed: terminated */
		if (l == 2)
			grease(c, (uint16_t)(first << 8 | last));
		if (!h->alpn.n++) {     /* JA4 looks at the first one */
			c->fp.alpn_len = l;
			c->fp.alpn_first = first;
			c->fp.alpn_last = last;
		}
	}
	return 0;
}

/* key_share (RFC 8446 4.2.8): may be empty; one share per group at most. */
static int ext_key_share(struct ctx *c, size_t len)
{
	struct hello *h = c->h;
	size_t left, l, n = 0, i, top = c->hi;
	uint16_t *g;

	if (ext_list(c, len, 2, 1, true, &left))
		return -1;
	h->flags |= HELLO_F_KEY_SHARE;
	while (left) {
		uint16_t group;

		if (entry_head(c, &left, 4))
			return -1;
		group = rd_u16(&c->r);
		l = rd_u16(&c->r);
		if (entry_body(c, &left, l, 1))
			return -1;
		rd_skip(&c->r, l);
		grease(c, group);
		LIST_ADD(c, h->key_shares, group);
		if (!(g = scratch_top(c, 1)))   /* the groups, for the check below */
			return fail(c, HELLO_R_INTERNAL, c->lo, c->hi, 0);
		*g = group;
		n++;
	}
	g = c->v + c->hi;
	fp_sort16(g, n);
	for (i = 1; i < n; i++)
		if (g[i] == g[i - 1])
			return fail(c, HELLO_R_KEY_SHARE_DUPLICATE, g[i], 0, 0);
	c->hi = top;
	return 0;
}

/* pre_shared_key (RFC 8446 4.2.11): identities, then as many binders. */
static int ext_pre_shared_key(struct ctx *c, size_t len)
{
	size_t ilen, blen, left, l, ni = 0, nb = 0;

	if (len < 2)
		return fail(c, HELLO_R_EXT_SHORT, len, 2, 0);
	ilen = rd_u16(&c->r);
	if (ilen > len - 2)
		return fail(c, HELLO_R_EXT_LIST_OVERRUN, ilen, len, 2);
	if (!ilen)
		return fail(c, HELLO_R_EXT_LIST_EMPTY, 0, 0, 0);
	for (left = ilen; left; ni++) {
		if (entry_head(c, &left, 2))
			return -1;
		l = rd_u16(&c->r);
		if (entry_body(c, &left, l, 1))
			return -1;
		rd_skip(&c->r, l);
		if (entry_head(c, &left, 4))    /* obfuscated_ticket_age */
			return -1;
		rd_skip(&c->r, 4);
	}
	left = len - 2 - ilen;
	if (entry_head(c, &left, 2))
		return -1;
	blen = rd_u16(&c->r);
	if (blen != left)
		return fail(c, HELLO_R_PSK_BINDERS_LEN, blen, left, 0);
	if (!blen)
		return fail(c, HELLO_R_EXT_LIST_EMPTY, 0, 0, 0);
	for (; left; nb++) {
		if (entry_head(c, &left, 1))
			return -1;
		l = rd_u8(&c->r);
		if (entry_body(c, &left, l, 32))
			return -1;
		rd_skip(&c->r, l);
	}
	if (nb != ni)
		return fail(c, HELLO_R_PSK_BINDERS, nb, ni, 0);
	c->h->psk_identities = (unsigned)ni;
	c->h->flags |= HELLO_F_PSK;
	return 0;
}

/* Extensions whose data must be empty. */
static int ext_empty(struct ctx *c, size_t len, uint32_t flag)
{
	if (len)
		return fail(c, HELLO_R_EXT_NOT_EMPTY, len, 0, 0);
	c->h->flags |= flag;
	return 0;
}

/* One extension's data, len bytes; the cursor is at its start. */
static int parse_ext(struct ctx *c, uint16_t type, size_t len)
{
	struct hello *h = c->h;
	size_t n, i, top = c->hi;
	uint16_t *all;

	switch (type) {
	case EXT_SERVER_NAME:
		return ext_server_name(c, len);
	case EXT_ALPN:
		return ext_alpn(c, len);
	case EXT_KEY_SHARE:
		return ext_key_share(c, len);
	case EXT_PRE_SHARED_KEY:
		return ext_pre_shared_key(c, len);
	case EXT_SUPPORTED_GROUPS:      /* RFC 8446 4.2.7: NamedGroup<2..2^16-1> */
		if (U16_LIST(c, len, 2, h->groups, &all, &c->fp.ngroups))
			return -1;
		c->fp.groups = all;     /* for JA3 */
		return 0;
	case EXT_SIGNATURE_ALGORITHMS:  /* RFC 8446 4.2.3 */
		if (U16_LIST(c, len, 2, h->sigalgs, &all, &c->fp.nsigalgs))
			return -1;
		c->fp.sigalgs = all;    /* for JA4 */
		return 0;
	case EXT_SIGNATURE_ALGORITHMS_CERT:
		if (U16_LIST(c, len, 2, h->sigalgs_cert, &all, &n))
			return -1;
		c->hi = top;
		return 0;
	case EXT_SUPPORTED_VERSIONS:    /* RFC 8446 4.2.1: versions<2..254> */
		if (U16_LIST(c, len, 1, h->versions, &all, &n))
			return -1;
		for (i = 0; i < n; i++)
			if (!hello_is_grease(all[i]) && all[i] > h->version)
				h->version = all[i];
		c->hi = top;
		h->flags |= HELLO_F_SUPPORTED_VERSIONS;
		return 0;
	case EXT_EC_POINT_FORMATS:      /* RFC 8422 5.1.2: <1..2^8-1> */
		if (ext_list(c, len, 1, 1, false, &n))
			return -1;
		if (!(all = scratch_top(c, n)))
			return fail(c, HELLO_R_INTERNAL, c->lo, c->hi, 0);
		for (i = 0; i < n; i++) {
			all[i] = rd_u8(&c->r);
			LIST_ADD(c, h->point_formats, (uint8_t)all[i]);
		}
		c->fp.pf = all;         /* for JA3 */
		c->fp.npf = n;
		return 0;
	case EXT_PSK_KEY_EXCHANGE_MODES: /* RFC 8446 4.2.9: <1..255> */
		if (ext_list(c, len, 1, 1, false, &n))
			return -1;
		for (i = 0; i < n; i++) {
			uint8_t m = rd_u8(&c->r);

			if (m < 8)
				h->psk_modes |= (uint8_t)(1u << m);
			if (m % 31 == 11)       /* 0x0b, 0x2a ... 0xe4 (RFC 8701 2) */
				h->flags |= HELLO_F_GREASE;
		}
		h->flags |= HELLO_F_PSK_MODES;
		return 0;
	case EXT_RENEGOTIATION_INFO:    /* RFC 5746 3.2: <0..255> */
		if (ext_list(c, len, 1, 1, true, &n))
			return -1;
		rd_skip(&c->r, n);
		h->reneg_info_len = (uint8_t)n;
		h->flags |= HELLO_F_RENEG_INFO;
		return 0;
	case EXT_EXTENDED_MASTER_SECRET: /* RFC 7627 5.1 */
		return ext_empty(c, len, HELLO_F_EMS);
	case EXT_ENCRYPT_THEN_MAC:      /* RFC 7366 2 */
		return ext_empty(c, len, HELLO_F_ETM);
	case EXT_EARLY_DATA:            /* RFC 8446 4.2.10 */
		return ext_empty(c, len, HELLO_F_EARLY_DATA);
	case EXT_POST_HANDSHAKE_AUTH:   /* RFC 8446 4.2.6 */
		return ext_empty(c, len, HELLO_F_POST_HS_AUTH);
	case EXT_SESSION_TICKET:        /* RFC 5077 3.2: the ticket, or nothing */
		rd_skip(&c->r, len);
		h->ticket_len = (uint16_t)len;
		h->flags |= HELLO_F_SESSION_TICKET;
		return 0;
	case EXT_PADDING:               /* RFC 7685 3: zeros */
		for (i = 0; i < len; i++)
			if (rd_u8(&c->r))
				h->flags |= HELLO_F_PADDING_NONZERO;
		h->padding_len = (uint16_t)len;
		h->flags |= HELLO_F_PADDING;
		return 0;
	case EXT_STATUS_REQUEST:
		h->flags |= HELLO_F_STATUS_REQUEST;
		/* fall through */
	default:
		rd_skip(&c->r, len);
		return 0;
	}
}

/* The extensions block, block bytes (RFC 8446 4.2: each type at most once). */
static int parse_exts(struct ctx *c, size_t block)
{
	size_t end = c->r.off + block;

	memset(c->seen, 0, sizeof(c->seen));
	while (c->r.off < end) {
		size_t left = end - c->r.off, len, ext_end;
		uint16_t type;

		if (left < 4)
			return fail(c, HELLO_R_EXT_HEADER, left, 0, 0);
		type = rd_u16(&c->r);
		len = rd_u16(&c->r);
		c->ext = type;
		if (len > left - 4)
			return fail(c, HELLO_R_EXT_OVERRUN, len, left - 4, 0);
		if (c->seen[type / 64] >> (type % 64) & 1)
			return fail(c, HELLO_R_EXT_DUPLICATE, 0, 0, 0);
		c->seen[type / 64] |= 1ull << (type % 64);
		if (scratch_push(c, type))
			return -1;
		c->fp.nexts++;
		LIST_ADD(c, c->h->exts, type);
		grease(c, type);
		ext_end = c->r.off + len;
		if (type == EXT_PRE_SHARED_KEY && ext_end != end)
			return fail(c, HELLO_R_PSK_NOT_LAST, 0, 0, 0);
		if (parse_ext(c, type, len))
			return -1;
		if (c->r.over || c->r.off != ext_end)
			return fail(c, HELLO_R_INTERNAL, c->r.off, ext_end, 0);
		c->ext = -1;
	}
	return 0;
}

/* ------------------------------------------------------- ClientHello body */

/* RFC 8446 4.1.2 (RFC 5246 7.4.1.2): the cursor is after the handshake
 * header; the body ends at the end of the message. */
static int parse_body(struct ctx *c)
{
	struct hello *h = c->h;
	struct rd *r = &c->r;
	size_t left = r->end - r->off, n, i;

	if (left < 35)
		return fail(c, HELLO_R_BODY_SHORT, left, 0, 0);
	h->legacy_version = rd_u16(r);
	if (h->legacy_version >> 8 != 3)
		return fail(c, HELLO_R_LEGACY_VERSION, h->legacy_version, 0, 0);
	rd_skip(r, 32);                 /* random */
	n = rd_u8(r);
	left -= 35;
	if (n > 32)
		return fail(c, HELLO_R_SESSION_ID_LEN, n, 0, 0);
	if (n > left)
		return fail(c, HELLO_R_SESSION_ID_OVERRUN, n, left, 0);
	h->session_id_len = (uint8_t)n;
	rd_skip(r, n);
	left -= n;

	if (left < 2)
		return fail(c, HELLO_R_CIPHERS_SHORT, left, 0, 0);
	n = rd_u16(r);
	left -= 2;
	if (n > left)
		return fail(c, HELLO_R_CIPHERS_OVERRUN, n, left, 0);
	if (!n)
		return fail(c, HELLO_R_CIPHERS_EMPTY, 0, 0, 0);
	if (n % 2)
		return fail(c, HELLO_R_CIPHERS_ODD, n, 0, 0);
	for (i = 0; i < n; i += 2)
		if (add_cipher(c, rd_u16(r)))
			return -1;
	left -= n;

	if (!left)
		return fail(c, HELLO_R_COMPRESSION_SHORT, 0, 0, 0);
	n = rd_u8(r);
	left--;
	if (n > left)
		return fail(c, HELLO_R_COMPRESSION_OVERRUN, n, left, 0);
	if (!n)
		return fail(c, HELLO_R_COMPRESSION_EMPTY, 0, 0, 0);
	for (i = 0; i < n; i++)
		if (rd_u8(r))
			h->flags |= HELLO_F_COMPRESSION;
	h->compression_n = (uint8_t)n;
	left -= n;

	if (!left)                      /* no extensions: fine before TLS 1.3 */
		return 0;
	if (left < 2)
		return fail(c, HELLO_R_EXTS_SHORT, left, 0, 0);
	n = rd_u16(r);
	left -= 2;
	if (n > left)
		return fail(c, HELLO_R_EXTS_OVERRUN, n, left, 0);
	if (n < left)
		return fail(c, HELLO_R_EXTS_TRAILING, n, left - n, 0);
	return parse_exts(c, n);
}

/* SSLv2-compatible CLIENT-HELLO (RFC 5246 E.2): msg_type, version,
 * cipher_spec_length, session_id_length, challenge_length, then the three. */
static int parse_v2(struct ctx *c)
{
	struct hello *h = c->h;
	struct rd *r = &c->r;
	size_t specs, sid, chal, i;

	rd_u8(r);                       /* msg_type: 1, checked by the framing */
	h->legacy_version = rd_u16(r);
	specs = rd_u16(r);
	sid = rd_u16(r);
	chal = rd_u16(r);
	if (!specs || specs % 3)
		return fail(c, HELLO_R_V2_CIPHER_SPECS, specs, 0, 0);
	if (sid && sid != 16)
		return fail(c, HELLO_R_V2_SESSION_ID, sid, 0, 0);
	if (chal < 16 || chal > 32)
		return fail(c, HELLO_R_V2_CHALLENGE, chal, 0, 0);
	if (specs + sid + chal != r->end - 9)
		return fail(c, HELLO_R_V2_LENGTHS, specs + sid + chal, r->end - 9, 0);
	for (i = 0; i < specs; i += 3) {
		uint8_t kind = rd_u8(r);
		uint16_t v = rd_u16(r);

		if (kind)               /* an SSLv2-only cipher */
			h->ciphers_v2only++;
		else if (add_cipher(c, v))
			return -1;
	}
	h->session_id_len = (uint8_t)sid;
	rd_skip(r, sid + chal);
	return 0;
}

/* ---------------------------------------------------------------- framing */

static enum hello_result bad_at(struct ctx *c, size_t off, enum hello_reason why,
				unsigned long a, unsigned long b)
{
	fail_at(c, off, why, a, b, 0);
	return HELLO_BAD;
}

/*
 * TLS records from buf[0] (0x16): only handshake records until the
 * ClientHello is whole, which must end where a record ends. On HELLO_OK the
 * cursor is set on the ClientHello body.
 */
static enum hello_result frame_tls(struct ctx *c, const uint8_t *buf, size_t len)
{
	struct hello *h = c->h;
	size_t pos = 0, got = 0, total = 0;     /* total: 0 until known */
	unsigned nrec = 0;
	uint8_t hs[4];

	if (len < 2) {
		h->need = REC_HDR;
		return HELLO_MORE;
	}
	if (buf[1] != 3) {
		fail_at(c, 1, HELLO_R_NOT_TLS_VERSION, buf[1], 0, 0);
		return HELLO_NOT_TLS;
	}
	for (;;) {
		size_t data = pos + REC_HDR, rlen, have, k;
		uint16_t ver;

		if (len - pos < REC_HDR) {
			if (len > pos && buf[pos] != CT_HANDSHAKE)
				return bad_at(c, pos, HELLO_R_RECORD_TYPE, buf[pos], 0);
			h->need = data;
			return HELLO_MORE;
		}
		if (buf[pos] != CT_HANDSHAKE)
			return bad_at(c, pos, HELLO_R_RECORD_TYPE, buf[pos], 0);
		ver = (uint16_t)(buf[pos + 1] << 8 | buf[pos + 2]);
		if (ver >> 8 != 3)
			return bad_at(c, pos + 1, HELLO_R_RECORD_VERSION, nrec + 1, ver);
		rlen = (size_t)buf[pos + 3] << 8 | buf[pos + 4];
		if (!rlen)
			return bad_at(c, pos + 3, HELLO_R_RECORD_EMPTY, nrec + 1, 0);
		if (rlen > REC_MAX)
			return bad_at(c, pos + 3, HELLO_R_RECORD_OVERFLOW, nrec + 1, rlen);
		if (++nrec > HELLO_MAX_RECORDS)
			return bad_at(c, pos, HELLO_R_TOO_MANY_RECORDS, HELLO_MAX_RECORDS, 0);
		if (nrec == 1)
			h->record_version = ver;
		have = len - data < rlen ? len - data : rlen;
		for (k = 0; got + k < 4 && k < have; k++) {    /* handshake header */
			hs[got + k] = buf[data + k];
			if (got + k == 0 && hs[0] != HT_CLIENT_HELLO)
				return bad_at(c, data + k, HELLO_R_HANDSHAKE_TYPE, hs[0], 0);
			if (got + k == 3) {
				total = 4 + ((size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3]);
				if (total > HELLO_MAX_MSG)
					return bad_at(c, data + k, HELLO_R_TOO_LARGE, total,
						      HELLO_MAX_MSG);
			}
		}
		if (total && got + rlen > total)        /* known from the length */
			return bad_at(c, pos + 3, HELLO_R_RECORD_TRAILING, got + rlen - total, 0);
		if (have < rlen) {
			h->need = data + rlen;
			return HELLO_MORE;
		}
		got += rlen;
		pos = data + rlen;
		if (total && got == total)
			break;
	}
	h->consumed = pos;
	h->records = nrec;
	h->msg_len = (uint32_t)total;
	c->r = (struct rd){ .buf = buf, .end = total };
	rd_skip(&c->r, 4);              /* the handshake header */
	return HELLO_OK;
}

/*
 * SSLv2 header (high bit set, 2-byte length) and CLIENT-HELLO (msg_type 1,
 * version 0x0002 or 0x03XX); anything else with the high bit set is not TLS.
 */
static enum hello_result frame_v2(struct ctx *c, const uint8_t *buf, size_t len)
{
	struct hello *h = c->h;
	size_t mlen;
	uint16_t ver;

	if (len < 5) {
		h->need = 5;
		return HELLO_MORE;
	}
	ver = (uint16_t)(buf[3] << 8 | buf[4]);
	if (buf[2] != 1 || (ver != 0x0002 && ver >> 8 != 3)) {
		fail_at(c, 2, HELLO_R_NOT_TLS_SSLV2, buf[2], ver, 0);
		return HELLO_NOT_TLS;
	}
	mlen = (size_t)(buf[0] & 0x7f) << 8 | buf[1];
	if (mlen < 9)
		return bad_at(c, 0, HELLO_R_V2_SHORT, mlen, 0);
	if (len - 2 < mlen) {
		h->need = 2 + mlen;
		return HELLO_MORE;
	}
	h->consumed = 2 + mlen;
	h->records = 1;
	h->msg_len = (uint32_t)mlen;
	h->record_version = 0x0002;
	h->flags |= HELLO_F_SSLV2;
	c->r = (struct rd){ .buf = buf, .wpos = 2, .wleft = mlen, .end = mlen };
	return HELLO_OK;
}

/* ----------------------------------------------------------------- public */

enum hello_result hello_parse(const uint8_t *buf, size_t len, struct hello *out,
			      enum hello_reason *why)
{
	struct ctx c;   /* ~42 KiB: the scratch lists and the extension set */
	enum hello_result res;

	memset(out, 0, sizeof(*out));
	out->err.ext = -1;
	c.h = out;
	c.ext = -1;
	c.lo = 0;
	c.hi = SCRATCH_N;
	memset(&c.fp, 0, sizeof(c.fp));
	memset(&c.r, 0, sizeof(c.r));

	if (!len) {
		out->need = 1;
		res = HELLO_MORE;
	} else if (buf[0] == CT_HANDSHAKE) {
		res = frame_tls(&c, buf, len);
	} else if (buf[0] >= 20 && buf[0] <= 23) {
		/* another TLS record first (CCS, alert, application data):
		 * TLS, but no hello; control characters in plaintext */
		if (len < 2) {
			out->need = 2;
			res = HELLO_MORE;
		} else if (buf[1] == 3) {
			res = bad_at(&c, 0, HELLO_R_RECORD_TYPE, buf[0], 0);
		} else {
			fail_at(&c, 0, HELLO_R_NOT_TLS, buf[0], 0, 0);
			res = HELLO_NOT_TLS;
		}
	} else if (buf[0] & 0x80) {
		res = frame_v2(&c, buf, len);
	} else {
		fail_at(&c, 0, HELLO_R_NOT_TLS, buf[0], 0, 0);
		res = HELLO_NOT_TLS;
	}

	if (res == HELLO_OK) {
		int rc = out->flags & HELLO_F_SSLV2 ? parse_v2(&c) : parse_body(&c);

		if (!rc && (c.r.over || c.r.off != c.r.end))
			rc = fail(&c, HELLO_R_INTERNAL, c.r.off, c.r.end, 0);
		if (rc) {
			res = HELLO_BAD;
		} else {
			if (!(out->flags & HELLO_F_SUPPORTED_VERSIONS))
				out->version = out->legacy_version;
			c.fp.legacy_version = out->legacy_version;
			c.fp.version = out->version;
			c.fp.ciphers = c.v;
			c.fp.exts = c.v + c.fp.nciphers;
			fp_compute(&c.fp, out);
		}
	}
	if (why)
		*why = out->err.reason;
	return res;
}

static const char *const reason_label[] = {
#define R(name, label, format) label,
#include "hello_reasons.def"
#undef R
};

static const char *const reason_format[] = {
#define R(name, label, format) format,
#include "hello_reasons.def"
#undef R
};

const char *hello_reason_str(enum hello_reason why)
{
	return (unsigned)why < HELLO_R_COUNT ? reason_label[why] : "unknown";
}

int hello_explain(const struct hello *h, char *buf, size_t len)
{
	const struct hello_err *e = &h->err;
	const char *name;
	char scope[64] = "";
	int n;

	if ((unsigned)e->reason >= HELLO_R_COUNT)
		return snprintf(buf, len, "unknown reason %d", (int)e->reason);
	if (e->ext >= 0) {
		name = hello_ext_name((uint16_t)e->ext);
		if (name)
			snprintf(scope, sizeof(scope), "extension %s: ", name);
		else
			snprintf(scope, sizeof(scope), "extension %s0x%04x: ",
				 hello_is_grease((uint16_t)e->ext) ? "GREASE " : "", e->ext);
	}
	n = snprintf(buf, len, "%s", scope);
	if (n < 0)
		return n;
	/* The formats come from hello_reasons.def, each taking up to three
	 * unsigned longs: extra arguments are ignored (C11 7.21.6.1p2). */
	return n + snprintf(len > (size_t)n ? buf + n : NULL, len > (size_t)n ? len - (size_t)n : 0,
			    reason_format[e->reason], e->a, e->b, e->c);
}

const char *hello_ext_name(uint16_t type)
{
	switch (type) {
	case 0:      return "server_name";
	case 1:      return "max_fragment_length";
	case 5:      return "status_request";
	case 10:     return "supported_groups";
	case 11:     return "ec_point_formats";
	case 13:     return "signature_algorithms";
	case 14:     return "use_srtp";
	case 15:     return "heartbeat";
	case 16:     return "application_layer_protocol_negotiation";
	case 17:     return "status_request_v2";
	case 18:     return "signed_certificate_timestamp";
	case 21:     return "padding";
	case 22:     return "encrypt_then_mac";
	case 23:     return "extended_master_secret";
	case 27:     return "compress_certificate";
	case 28:     return "record_size_limit";
	case 34:     return "delegated_credential";
	case 35:     return "session_ticket";
	case 41:     return "pre_shared_key";
	case 42:     return "early_data";
	case 43:     return "supported_versions";
	case 44:     return "cookie";
	case 45:     return "psk_key_exchange_modes";
	case 47:     return "certificate_authorities";
	case 48:     return "oid_filters";
	case 49:     return "post_handshake_auth";
	case 50:     return "signature_algorithms_cert";
	case 51:     return "key_share";
	case 57:     return "quic_transport_parameters";
	case 0x3374: return "next_protocol_negotiation";
	case 0x4469: return "application_settings_old";
	case 0x44cd: return "application_settings";
	case 0xfe0d: return "encrypted_client_hello";
	case 0xff01: return "renegotiation_info";
	default:     return NULL;
	}
}

const char *hello_flag_name(unsigned bit)
{
	static const char *const names[] = {
#define X(name, label) label,
		HELLO_FLAGS(X)
#undef X
	};

	return bit < ARRAY_SIZE(names) ? names[bit] : NULL;
}
