/*
 * STARTTLS with the backend, sluice as the client (docs/configuration.md
 * "Backend TLS"): the plaintext opening that ends where the TLS handshake
 * starts, for SMTP (RFC 3207: greeting, EHLO, STARTTLS, 220), IMAP (RFC
 * 9051 6.2.1: greeting, CAPABILITY, STARTTLS, OK) and POP3 (RFC 2595 4:
 * greeting, CAPA, STLS, +OK). No I/O: a backend line in, an action out.
 * The backend's greeting line is kept, so that after the handshake the
 * protocol engine's backend_line can be given it and open the backend as
 * usual (SMTP: the EHLO again, RFC 3207 4.2: all knowledge is discarded).
 */
#ifndef SLUICE_BE_STARTTLS_H
#define SLUICE_BE_STARTTLS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define BST_GREETING_MAX 512

enum bst_result {
	BST_MORE,    /* nothing to do: more lines */
	BST_SEND,    /* send out[0, *n) to the backend */
	BST_TLS,     /* the backend said go: the handshake, now */
	BST_ABSENT,  /* the backend offers no STARTTLS */
	BST_FAIL,    /* the backend refused; why says how */
};

struct bst {
	enum cfg_proto proto;
	unsigned char state;
	bool offered;           /* STARTTLS/STLS among its capabilities */
	bool capa_ok;           /* POP3: CAPA's +OK came */
	size_t glen;
	char greeting[BST_GREETING_MAX]; /* its final greeting line, no CRLF */
	const char *why;        /* on BST_FAIL */
};

void bst_init(struct bst *b, enum cfg_proto p);

/* One backend line (CR LF stripped). hostname: for SMTP's EHLO. */
enum bst_result bst_line(struct bst *b, const char *hostname, const char *l, size_t len,
			 char *out, size_t cap, size_t *n);

#endif
