/*
 * hello_dump: what tls/hello makes of a client's first flight, as one JSON
 * object on stdout. For the corpus test and for operators.
 *
 *   hello_dump [--hex | --raw] [FILE]
 *
 * Reads FILE (or stdin): the bytes as the client sent them, raw or as hex
 * (Wireshark's "hex stream", xxd -p, or bytes separated by spaces, colons or
 * commas; "0x" prefixes allowed). Without --hex or --raw, input made only of
 * hex digits and separators is taken as hex.
 *
 * Exit status: 0 for a ClientHello, 1 for anything else (incomplete, not
 * TLS, rejected: the JSON says which and why), 2 for a usage or read error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hello.h"

#define INPUT_MAX (1 << 20)

static void json_str(const char *s, size_t n)
{
	size_t i;

	putchar('"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)         /* bytes as code points */
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void hex_list(const char *key, const uint16_t *v, unsigned kept, unsigned n)
{
	unsigned i;

	printf(",\n  \"%s\": [", key);
	for (i = 0; i < kept; i++)
		printf("%s\"0x%04x\"", i ? ", " : "", v[i]);
	printf("],\n  \"%s_n\": %u", key, n);
}

static void dump(const struct hello *h, enum hello_result res, size_t len)
{
	static const char *const results[] = { "ok", "more", "not_tls", "bad" };
	char why[512];
	unsigned i;

	printf("{\n  \"result\": \"%s\",\n  \"input_len\": %zu", results[res], len);
	if (res == HELLO_MORE)
		printf(",\n  \"need\": %zu", h->need);
	if (res == HELLO_NOT_TLS || res == HELLO_BAD) {
		hello_explain(h, why, sizeof(why));
		printf(",\n  \"reason\": \"%s\",\n  \"explain\": ", hello_reason_str(h->err.reason));
		json_str(why, strlen(why));
		printf(",\n  \"error_offset\": %zu", h->err.offset);
		if (h->err.ext >= 0)
			printf(",\n  \"error_ext\": %d", h->err.ext);
	}
	if (res != HELLO_OK) {
		printf("\n}\n");
		return;
	}
	printf(",\n  \"consumed\": %zu,\n  \"records\": %u,\n  \"msg_len\": %u", h->consumed,
	       h->records, h->msg_len);
	printf(",\n  \"record_version\": \"0x%04x\",\n  \"legacy_version\": \"0x%04x\","
	       "\n  \"version\": \"0x%04x\"", h->record_version, h->legacy_version, h->version);
	printf(",\n  \"session_id_len\": %u,\n  \"compression_methods\": %u", h->session_id_len,
	       h->compression_n);
	printf(",\n  \"flags\": [");
	for (i = 0; i < HELLO_FB_COUNT; i++)
		if (h->flags & 1u << i)
			printf("%s\"%s\"", h->flags & ((1u << i) - 1) ? ", " : "", hello_flag_name(i));
	printf("]");
	hex_list("ciphers", h->ciphers.v, h->ciphers.kept, h->ciphers.n);
	printf(",\n  \"ciphers_v2only\": %u", h->ciphers_v2only);
	hex_list("extensions", h->exts.v, h->exts.kept, h->exts.n);
	hex_list("groups", h->groups.v, h->groups.kept, h->groups.n);
	printf(",\n  \"point_formats\": [");
	for (i = 0; i < h->point_formats.kept; i++)
		printf("%s%u", i ? ", " : "", h->point_formats.v[i]);
	printf("],\n  \"point_formats_n\": %u", h->point_formats.n);
	hex_list("sigalgs", h->sigalgs.v, h->sigalgs.kept, h->sigalgs.n);
	hex_list("sigalgs_cert", h->sigalgs_cert.v, h->sigalgs_cert.kept, h->sigalgs_cert.n);
	hex_list("versions", h->versions.v, h->versions.kept, h->versions.n);
	hex_list("key_shares", h->key_shares.v, h->key_shares.kept, h->key_shares.n);
	printf(",\n  \"alpn\": [");
	for (i = 0; i < h->alpn.kept; i++) {
		const struct hello_alpn *a = &h->alpn.v[i];

		printf("%s", i ? ", " : "");
		json_str(a->name, a->len < HELLO_ALPN_NAME_MAX ? a->len : HELLO_ALPN_NAME_MAX);
	}
	printf("],\n  \"alpn_n\": %u", h->alpn.n);
	printf(",\n  \"sni\": ");
	if (h->sni_len)
		json_str(h->sni, h->sni_len);
	else
		printf("null");
	printf(",\n  \"psk_modes\": [");
	for (i = 0; i < 8; i++)
		if (h->psk_modes & 1u << i)
			printf("%s%u", h->psk_modes & ((1u << i) - 1) ? ", " : "", i);
	printf("],\n  \"psk_identities\": %u,\n  \"padding_len\": %u,\n  \"ticket_len\": %u,"
	       "\n  \"reneg_info_len\": %u", h->psk_identities, h->padding_len, h->ticket_len,
	       h->reneg_info_len);
	printf(",\n  \"ja3\": ");
	json_str(h->ja3, strlen(h->ja3));
	printf(",\n  \"ja3_md5\": \"%s\",\n  \"ja4\": \"%s\"\n}\n", h->ja3_md5, h->ja4);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int is_sep(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ':' || c == ',';
}

/* Input that is nothing but hex digits, separators and 0x prefixes. */
static int looks_hex(const uint8_t *p, size_t n)
{
	size_t i, digits = 0;

	for (i = 0; i < n; i++) {
		if (p[i] == '0' && i + 1 < n && (p[i + 1] | 0x20) == 'x') {
			i++;
			continue;
		}
		if (hexval(p[i]) >= 0)
			digits++;
		else if (!is_sep(p[i]))
			return 0;
	}
	return digits > 0;
}

/* Hex to bytes in place; returns the byte count, or -1. */
static long unhex(uint8_t *p, size_t n)
{
	size_t i, out = 0;
	int hi = -1;

	for (i = 0; i < n; i++) {
		int v;

		if (p[i] == '0' && i + 1 < n && (p[i + 1] | 0x20) == 'x' && hi < 0) {
			i++;
			continue;
		}
		if (is_sep(p[i])) {
			if (hi >= 0)
				return -1;      /* odd digit count in a group */
			continue;
		}
		if ((v = hexval(p[i])) < 0)
			return -1;
		if (hi < 0) {
			hi = v;
		} else {
			p[out++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	return hi >= 0 ? -1 : (long)out;
}

int main(int argc, char **argv)
{
	static uint8_t buf[INPUT_MAX + 1];
	const char *path = NULL;
	int mode = 0;                   /* 0 guess, 1 hex, 2 raw */
	struct hello h;
	enum hello_result res;
	FILE *f = stdin;
	size_t len;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--hex"))
			mode = 1;
		else if (!strcmp(argv[i], "--raw"))
			mode = 2;
		else if (argv[i][0] == '-' && argv[i][1])
			goto usage;
		else if (path)
			goto usage;
		else
			path = argv[i];
	}
	if (path && strcmp(path, "-") && !(f = fopen(path, "rb"))) {
		fprintf(stderr, "hello_dump: %s: %s\n", path, strerror(errno));
		return 2;
	}
	len = fread(buf, 1, sizeof(buf), f);
	if (ferror(f) || len > INPUT_MAX) {
		fprintf(stderr, "hello_dump: %s: %s\n", path ? path : "stdin",
			ferror(f) ? strerror(errno) : "more than 1 MiB");
		return 2;
	}
	if (f != stdin)
		fclose(f);
	if (mode == 1 || (mode == 0 && looks_hex(buf, len))) {
		long n = unhex(buf, len);

		if (n < 0) {
			fprintf(stderr, "hello_dump: bad hex input\n");
			return 2;
		}
		len = (size_t)n;
	}
	res = hello_parse(buf, len, &h, NULL);
	dump(&h, res, len);
	return res == HELLO_OK ? 0 : 1;

usage:
	fprintf(stderr, "usage: hello_dump [--hex | --raw] [FILE]\n");
	return 2;
}
