/*
 * Client bytes in a log line (issue 12, finding 1). A log line is
 * key=value pairs on one line: a client that can put LF, spaces, quotes
 * or '=' in a field it controls (SNI, ALPN, a quoted reason) could forge
 * lines or keys. Every client-controlled field goes through one of these
 * before it reaches log_msg:
 *
 *   logsafe_name    a bare value that should be a host name: kept if it
 *                   holds only letters, digits, '-', '.' and '_', else
 *                   written "hex:" and its bytes in hex (sni=hex:6d780a22)
 *   logsafe_quoted  the inside of a "quoted" value: printable ASCII kept,
 *                   '"', '\' and every other byte written \xHH
 *
 * Both truncate to the output (never in the middle of an escape) and
 * always terminate it. docs/operations.md shows what they look like.
 */
#ifndef SLUICE_LOGSAFE_H
#define SLUICE_LOGSAFE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Room for logsafe_name of n bytes: "hex:" and two digits a byte. */
#define LOGSAFE_NAME_SIZE(n) (4 + 2 * (n) + 1)

static inline bool logsafe_name_char(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '.' || ch == '_';
}

/* in[0..len) as a bare log value into out (outlen > 0); "-" if empty. */
static inline const char *logsafe_name(const char *in, size_t len, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)in;
	size_t i, o = 0;
	bool plain = len > 0;

	for (i = 0; i < len && plain; i++)
		plain = logsafe_name_char(p[i]);
	if (!len) {
		snprintf(out, outlen, "-");
	} else if (plain) {
		snprintf(out, outlen, "%.*s", (int)len, in);
	} else {
		o = (size_t)snprintf(out, outlen, "hex:");
		for (i = 0; i < len && o + 3 <= outlen; i++) {
			out[o++] = hex[p[i] >> 4];
			out[o++] = hex[p[i] & 15];
		}
		out[o < outlen ? o : outlen - 1] = '\0';
	}
	return out;
}

/* A C string as the inside of a quoted log value into out (outlen > 0). */
static inline const char *logsafe_quoted(const char *in, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0;

	for (; *p; p++) {
		if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') {
			if (o + 2 > outlen)
				break;
			out[o++] = (char)*p;
		} else {
			if (o + 5 > outlen)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
	return out;
}

#endif
