/*
 * JA3 and JA4 of a ClientHello (internal to tls/hello). hello_parse() gathers
 * the full lists while it parses, in wire order and with GREASE values still
 * in, and hands them over here: the fingerprints never see the summary's
 * truncated arrays.
 *
 * JA3: https://github.com/salesforce/ja3 (README, python/ja3.py).
 * JA4: https://github.com/FoxIO-LLC/ja4 technical_details/JA4.md.
 */
#ifndef SLUICE_FINGERPRINT_H
#define SLUICE_FINGERPRINT_H

#include <stddef.h>
#include <stdint.h>

#include "hello.h"

struct fp_lists {
	uint16_t legacy_version;   /* JA3 SSLVersion: client_version */
	uint16_t version;          /* JA4 version: struct hello's version */
	int sni;                   /* server_name extension present */
	size_t alpn_len;           /* first ALPN protocol: length (0: none) */
	uint8_t alpn_first, alpn_last; /* its first and last bytes */
	uint16_t *ciphers;         /* sorted in place by fp_compute() */
	size_t nciphers;
	uint16_t *exts;            /* types in order; sorted in place */
	size_t nexts;
	const uint16_t *groups;    /* supported_groups */
	size_t ngroups;
	const uint16_t *pf;        /* ec_point_formats */
	size_t npf;
	const uint16_t *sigalgs;   /* signature_algorithms, in order */
	size_t nsigalgs;
};

/*
 * Fill h->ja3, h->ja3_md5 and h->ja4 (and HELLO_F_JA3_TRUNCATED) from l.
 * Reorders l->ciphers and l->exts. A digest that OpenSSL cannot give (MD5
 * under a FIPS provider, no memory) leaves its field empty.
 */
void fp_compute(struct fp_lists *l, struct hello *h);

/* Sort v[0, n) ascending: heapsort, no recursion, no extra memory. */
void fp_sort16(uint16_t *v, size_t n);

#endif
