/*
 * TLS from sluice to a backend: the checks of a backend's `tls`,
 * `tls_mode`, `server_name`, `ca_file`, `pin_sha256`, `client_cert`,
 * `client_key`, `min_version` and `fallback_memory` (docs/configuration.md
 * "backend TLS"). The keys themselves are in the backend's schema
 * (config.c); the dataplane builds its client SSL_CTX from them.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config_int.h"

/* Decode standard base64 (RFC 4648 4, padding required) into out; the
 * number of bytes, or -1 if s is not base64 or does not fit. */
static int cfg_base64(const char *s, unsigned char *out, size_t cap)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t len = strlen(s), n = 0;

	if (len == 0 || len % 4)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		unsigned v = 0, pad = 0;

		for (size_t j = 0; j < 4; j++) {
			const char *p = s[i + j] ? strchr(abc, s[i + j]) : NULL;

			if (s[i + j] == '=' && i + 4 == len && j >= 2 &&
			    (j == 3 || s[i + 3] == '=')) {
				pad++;
				v <<= 6;
				continue;
			}
			if (!p || pad)
				return -1;
			v = v << 6 | (unsigned)(p - abc);
		}
		for (unsigned k = 0; k < 3 - pad; k++) {
			if (n == cap)
				return -1;
			out[n++] = (unsigned char)(v >> (16 - 8 * k));
		}
	}
	return (int)n;
}

/* p = "backends[i].key" (p holds CFG_PATH_MAX). */
static void cfg_tls_key(char *p, unsigned i, const char *key)
{
	snprintf(p, CFG_PATH_MAX, "backends[%u].%.32s", i, key);
}

/* The file at key `what` of backend i must be readable now: a missing CA
 * file found at start-up, with its line, not at the first session. */
static int cfg_tls_file(struct cfg_ld *ld, unsigned i, const char *what, const char *f)
{
	char p[CFG_PATH_MAX];

	if (!f)
		return 0;
	cfg_tls_key(p, i, what);
	if (f[0] != '/')
		return cfg_err(ld, p, "'%s' is not an absolute path", f);
	if (access(f, R_OK))
		return cfg_err(ld, p, "cannot read '%s': %s", f, strerror(errno));
	return 0;
}

int cfg_check_backend_tls(struct cfg_ld *ld, struct cfg *c, unsigned i)
{
	struct cfg_backend_tls *t = &c->backends[i].tls;
	char p[CFG_PATH_MAX];
	int rc, n;

	cfg_tls_key(p, i, "min_version");
	if (!cfg_present(ld, p))
		t->min_version = CFG_TLS_V1_2;
	cfg_tls_key(p, i, "fallback_memory");
	if ((rc = cfg_uint(ld, p, &t->fallback_memory, CFG_FALLBACK_MEMORY_DEFAULT, 0,
			   30 * 86400)))
		return rc;

	if (t->tls == CFG_BE_TLS_OFF) {
		/* Keys that would be ignored are a mistake to point out. */
		static const char *const keys[] = {
			"tls_mode", "server_name", "ca_file", "pin_sha256", "client_cert",
			"client_key", "min_version", "fallback_memory",
		};
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			cfg_tls_key(p, i, keys[k]);
			if (cfg_present(ld, p))
				return cfg_err(ld, p, "only with tls: on or required");
		}
		return 0;
	}
	cfg_tls_key(p, i, "tls");
	if (!t->ca_file && !t->pin_sha256)
		return cfg_err(ld, p, "needs ca_file or pin_sha256: sluice verifies "
			       "every backend it speaks TLS to");
	if (t->tls == CFG_BE_TLS_ON && t->mode == CFG_BE_TLS_IMPLICIT) {
		cfg_tls_key(p, i, "tls_mode");
		return cfg_err(ld, p, "implicit TLS is not offered, it is there or not: "
			       "write tls: required");
	}
	cfg_tls_key(p, i, "pin_sha256");
	if (t->pin_sha256 && t->ca_file)
		return cfg_err(ld, p, "not with ca_file: the pin alone decides");
	if (t->pin_sha256) {
		n = cfg_base64(t->pin_sha256, t->pin, sizeof(t->pin));
		if (n != CFG_PIN_LEN)
			return cfg_err(ld, p, "'%s' is not the base64 of a SHA-256 (44 "
				       "characters ending in '=')", t->pin_sha256);
		t->has_pin = true;
	}
	cfg_tls_key(p, i, "ca_file");
	if (t->ca_file && !t->server_name)
		return cfg_err(ld, p, "needs server_name: the name the backend's "
			       "certificate must carry");
	cfg_tls_key(p, i, "server_name");
	if (t->server_name && !cfg_host_name_ok(t->server_name, false))
		return cfg_err(ld, p, "'%s' is not a host name", t->server_name);
	if (!!t->client_cert != !!t->client_key) {
		cfg_tls_key(p, i, t->client_cert ? "client_cert" : "client_key");
		return cfg_err(ld, p, "client_cert and client_key go together");
	}
	if ((rc = cfg_tls_file(ld, i, "ca_file", t->ca_file)) ||
	    (rc = cfg_tls_file(ld, i, "client_cert", t->client_cert)) ||
	    (rc = cfg_tls_file(ld, i, "client_key", t->client_key)))
		return rc;
	return 0;
}
