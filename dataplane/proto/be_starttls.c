/*
 * STARTTLS with the backend, sluice as the client: see be_starttls.h.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proto/be_starttls.h"

void bst_init(struct bst *b, enum cfg_proto p)
{
	memset(b, 0, sizeof(*b));
	b->proto = p;
}

static enum bst_result bst_send(char *out, size_t cap, size_t *n, const char *s)
{
	int w = snprintf(out, cap, "%s", s);

	*n = w > 0 && (size_t)w < cap ? (size_t)w : 0;
	return BST_SEND;
}

static enum bst_result bst_fail(struct bst *b, const char *why)
{
	b->why = why;
	return BST_FAIL;
}

static void bst_keep_greeting(struct bst *b, const char *l, size_t len)
{
	b->glen = len < sizeof(b->greeting) ? len : sizeof(b->greeting) - 1;
	memcpy(b->greeting, l, b->glen);
}

/* Is word w (length wl) among the blank-separated tokens of l? */
static bool has_token(const char *l, size_t len, const char *w)
{
	size_t wl = strlen(w);

	for (size_t i = 0; i + wl <= len; i++)
		if ((i == 0 || l[i - 1] == ' ') && !strncasecmp(l + i, w, wl) &&
		    (i + wl == len || l[i + wl] == ' '))
			return true;
	return false;
}

/* RFC 3207: 220 greeting (maybe multi-line), EHLO, 250 lines (one of them
 * STARTTLS), STARTTLS, 220. */
static enum bst_result bst_smtp(struct bst *b, const char *host, const char *l, size_t len,
				char *out, size_t cap, size_t *n)
{
	bool final = len == 3 || (len > 3 && l[3] == ' ');
	bool cont = len > 3 && l[3] == '-';
	char ehlo[300];

	if (len < 3 || (!final && !cont))
		return bst_fail(b, "backend sent a malformed reply");
	switch (b->state) {
	case 0:
		if (strncmp(l, "220", 3))
			return bst_fail(b, "backend greeting refused");
		if (!final)
			return BST_MORE;
		bst_keep_greeting(b, l, len);
		b->state = 1;
		snprintf(ehlo, sizeof(ehlo), "EHLO %s\r\n", host);
		return bst_send(out, cap, n, ehlo);
	case 1:
		if (strncmp(l, "250", 3))
			return bst_fail(b, "backend refused EHLO");
		if (len >= 12 && !strncasecmp(l + 4, "STARTTLS", 8) &&
		    (len == 12 || l[12] == ' '))
			b->offered = true;
		if (!final)
			return BST_MORE;
		if (!b->offered)
			return BST_ABSENT;
		b->state = 2;
		return bst_send(out, cap, n, "STARTTLS\r\n");
	default:
		if (!final)
			return BST_MORE;
		return strncmp(l, "220", 3) ? bst_fail(b, "backend refused STARTTLS") : BST_TLS;
	}
}

/* RFC 9051 6.2.1: greeting, CAPABILITY (STARTTLS among them), STARTTLS. */
static enum bst_result bst_imap(struct bst *b, const char *l, size_t len, char *out,
				size_t cap, size_t *n)
{
	switch (b->state) {
	case 0:
		if (len < 4 || strncasecmp(l, "* OK", 4))
			return bst_fail(b, "backend greeting refused");
		bst_keep_greeting(b, l, len);
		b->state = 1;
		return bst_send(out, cap, n, "S1 CAPABILITY\r\n");
	case 1:
		if (len >= 13 && !strncasecmp(l, "* CAPABILITY ", 13)) {
			b->offered |= has_token(l + 13, len - 13, "STARTTLS");
			return BST_MORE;
		}
		if (len >= 3 && !strncmp(l, "S1 ", 3)) {
			if (len < 5 || strncasecmp(l + 3, "OK", 2))
				return bst_fail(b, "backend refused CAPABILITY");
			if (!b->offered)
				return BST_ABSENT;
			b->state = 2;
			return bst_send(out, cap, n, "S2 STARTTLS\r\n");
		}
		return BST_MORE; /* other untagged data */
	default:
		if (len >= 3 && !strncmp(l, "S2 ", 3))
			return len >= 5 && !strncasecmp(l + 3, "OK", 2)
			       ? BST_TLS : bst_fail(b, "backend refused STARTTLS");
		return BST_MORE;
	}
}

/* RFC 2595 4, RFC 2449: greeting, CAPA (STLS among its lines), STLS. */
static enum bst_result bst_pop3(struct bst *b, const char *l, size_t len, char *out,
				size_t cap, size_t *n)
{
	switch (b->state) {
	case 0:
		if (len < 3 || strncmp(l, "+OK", 3))
			return bst_fail(b, "backend greeting refused");
		bst_keep_greeting(b, l, len);
		b->state = 1;
		return bst_send(out, cap, n, "CAPA\r\n");
	case 1:
		if (!b->capa_ok) {
			if (len >= 4 && !strncmp(l, "-ERR", 4))
				return BST_ABSENT; /* no CAPA: STLS cannot be known */
			if (len < 3 || strncmp(l, "+OK", 3))
				return bst_fail(b, "backend sent a malformed CAPA reply");
			b->capa_ok = true;
			return BST_MORE;
		}
		if (len == 1 && l[0] == '.') {
			if (!b->offered)
				return BST_ABSENT;
			b->state = 2;
			return bst_send(out, cap, n, "STLS\r\n");
		}
		if (len >= 4 && !strncasecmp(l, "STLS", 4) && (len == 4 || l[4] == ' '))
			b->offered = true;
		return BST_MORE;
	default:
		return len >= 3 && !strncmp(l, "+OK", 3) ? BST_TLS
							 : bst_fail(b, "backend refused STLS");
	}
}

enum bst_result bst_line(struct bst *b, const char *hostname, const char *l, size_t len,
			 char *out, size_t cap, size_t *n)
{
	*n = 0;
	switch (b->proto) {
	case CFG_PROTO_SMTP:
		return bst_smtp(b, hostname, l, len, out, cap, n);
	case CFG_PROTO_IMAP:
		return bst_imap(b, l, len, out, cap, n);
	case CFG_PROTO_POP3:
		return bst_pop3(b, l, len, out, cap, n);
	default:
		return bst_fail(b, "STARTTLS to this protocol's backends is not known");
	}
}
