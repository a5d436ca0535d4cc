/*
 * Ticket key files that a fleet shares (tickets.key_file), in two formats,
 * told apart by their bytes:
 *
 *  - HAProxy's tls-ticket-keys: text, one base64 key per line, 48 bytes
 *    (name 16, AES-128 16, HMAC 16) or 80 bytes (name 16, AES-256 32, HMAC
 *    32), all of one size. HAProxy keeps the last TLS_TICKETS_NO lines
 *    (control.ticket_keys here, default 3 as there), needs at least that
 *    many, seals with the penultimate line and opens with the last N: a
 *    fleet appends a key to every box's file before any box seals with it
 *    (the new last line only opens until the next append makes it
 *    penultimate). Its ticket callback tries the penultimate first, then
 *    the last, then the older ones from the oldest: the ring keeps that
 *    order, so the key that seals is first. Blank lines and lines starting
 *    with '#' are skipped (HAProxy refuses them; nothing is lost).
 *  - nginx's ssl_session_ticket_key: binary, 80 bytes per key (name 16,
 *    HMAC 32, AES-256 32), the first seals, every key opens; what sluice
 *    read before (one or more keys in one file).
 *  - sluice's own, with windows: text, one key per line as
 *    "NOT_BEFORE NOT_AFTER KEY", the times in RFC 3339 UTC
 *    (2026-12-05T11:00:00Z), the key as in HAProxy's format. What
 *    sluice-control writes with tickets.export (control/ticket_export.c):
 *    a key seals from its not_before and opens until its not_after, by
 *    each box's own clock, so the boxes of a fleet switch keys together
 *    however late the file reached them, as long as it came one window
 *    ahead. The newest key whose window has begun seals; 1 to 16 keys.
 *
 * Either is refused when group or others have any access to it (mode &
 * 077): a ticket key decrypts every session it sealed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strptime, timegm */
#endif
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "files.h"
#include "resume.h"

#define TK_FILE_MAX (64 * 1024)  /* no key file is near this */

/* The key file's bytes and mode: from the bundle, or the disk. 0 or -errno
 * with the reason in err. */
static int tk_file_load(const struct cfg *c, char **data, size_t *len, unsigned *mode,
			struct stat *st_out, char *err, size_t errlen)
{
	const char *path = c->tickets.key_file;
	struct stat st;
	FILE *f;
	int rc;

	if (c->files) {
		const struct cfg_file *cf = cfg_files_find(c->files, path);

		if (!cf) {
			snprintf(err, errlen, "%s: not among the files sent", path);
			return -ENOENT;
		}
		*mode = cf->mode;
		if (!(*data = malloc(cf->len + 1)))
			return -ENOMEM;
		memcpy(*data, cf->data, cf->len);
		(*data)[cf->len] = '\0';
		*len = cf->len;
		return 0;
	}
	if (!(f = fopen(path, "rb"))) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return rc;
	}
	/* Unbuffered: stdio's buffer would be freed by fclose with the keys
	 * in it. */
	setvbuf(f, NULL, _IONBF, 0);
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = S_ISREG(st.st_mode) ? -errno : -EINVAL;
		snprintf(err, errlen, "%s: %s", path,
			 rc == -EINVAL ? "not a regular file" : strerror(-rc));
		fclose(f);
		return rc;
	}
	if (st.st_size > TK_FILE_MAX) {
		snprintf(err, errlen, "%s: %lld bytes; a key file is a few hundred", path,
			 (long long)st.st_size);
		fclose(f);
		return -EFBIG;
	}
	if (!(*data = malloc((size_t)st.st_size + 1))) {
		fclose(f);
		return -ENOMEM;
	}
	*len = fread(*data, 1, (size_t)st.st_size, f);
	(*data)[*len] = '\0';
	fclose(f);
	*mode = st.st_mode & 07777;
	if (st_out)
		*st_out = st;
	return 0;
}

/* Text made only of base64 characters, whitespace and '#' comments:
 * HAProxy's format. Random binary keys are not (80 bytes of base64
 * alphabet by chance: about 2^-80). */
static bool tk_is_text(const char *d, size_t len)
{
	bool comment = false;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)d[i];

		if (ch == '\n') {
			comment = false;
			continue;
		}
		if (comment) {
			/* A comment is text too: an nginx key whose first
			 * byte is '#' (one in 256) is not one long comment. */
			if ((ch < 0x20 || ch > 0x7e) && ch != '\t' && ch != '\r')
				return false;
			continue;
		}
		if (ch == '#' && (i == 0 || d[i - 1] == '\n'))
			comment = true;
		else if (!(ch == '+' || ch == '/' || ch == '=' || ch == '\r' || ch == ' ' ||
			   ch == '-' || ch == ':' ||
			   ch == '\t' || (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
			   (ch >= 'A' && ch <= 'Z')))
			return false;
	}
	return true;
}

/* One base64 line into out (up to 81 bytes); the byte count or -1. */
static int tk_b64(const char *s, size_t n, unsigned char *out)
{
	unsigned char tmp[((4096 + 3) / 4) * 3];
	int len, pad = 0;

	if (n == 0 || n % 4 || n > 4096)
		return -1;
	if ((len = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n)) < 0)
		return -1;
	pad = (s[n - 1] == '=') + (n > 1 && s[n - 2] == '=');
	len -= pad;
	if (len > 80) {
		OPENSSL_cleanse(tmp, sizeof(tmp));
		return len;
	}
	memcpy(out, tmp, (size_t)len);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return len;
}

/* The base64 key s[0, l) of line lineno into k (name, AES, HMAC in
 * HAProxy's order; no window): 48 or 80 bytes, the size of the keys before
 * it (*size, 0 for the first). 0, or -EINVAL with the reason in err. */
static int tk_line_key(const char *path, unsigned lineno, const char *s, size_t l, int *size,
		       struct tls_ticket_key *k, char *err, size_t errlen)
{
	unsigned char raw[81];
	int n = tk_b64(s, l, raw), rc = -EINVAL;

	if (n != 48 && n != 80) {
		snprintf(err, errlen, "%s: line %u: not a base64 key of 48 or 80 bytes "
			 "(make one with: openssl rand 80 | base64 -w0)", path, lineno);
	} else if (*size && n != *size) {
		snprintf(err, errlen, "%s: line %u: a %d-byte key after %d-byte ones; "
			 "all keys of a file have one size", path, lineno, n, *size);
	} else {
		*size = n;
		memset(k, 0, sizeof(*k));
		memcpy(k->name, raw, 16);
		k->aes_len = k->hmac_len = (unsigned char)((n - 16) / 2);
		memcpy(k->aes, raw + 16, k->aes_len);
		memcpy(k->hmac, raw + 16 + k->aes_len, k->hmac_len);
		rc = 0;
	}
	OPENSSL_cleanse(raw, sizeof(raw));
	return rc;
}

/* HAProxy's tls-ticket-keys: see the top of this file. */
static int tk_parse_haproxy(const struct cfg *c, char *d, struct tls_ticket_key *keys,
			    long long now, char *err, size_t errlen)
{
	const char *path = c->tickets.key_file;
	unsigned need = c->control.ticket_keys ? c->control.ticket_keys : 3;
	struct tls_ticket_key ring[TLS_TICKET_KEYS_MAX]; /* slot line % need, as HAProxy */
	unsigned lines = 0, lineno = 0, head;
	int size = 0, rc = -EINVAL;
	char *p = d, *nl;

	if (need > TLS_TICKET_KEYS_MAX)
		need = TLS_TICKET_KEYS_MAX;
	for (; *p; p = nl ? nl + 1 : p + strlen(p)) {
		size_t l;
		char *s = p;

		nl = strchr(p, '\n');
		l = nl ? (size_t)(nl - p) : strlen(p);
		lineno++;
		while (l && (s[l - 1] == '\r' || s[l - 1] == ' ' || s[l - 1] == '\t'))
			l--;
		while (l && (*s == ' ' || *s == '\t'))
			s++, l--;
		if (!l || *s == '#')
			continue;
		if (tk_line_key(path, lineno, s, l, &size, &ring[lines % need], err, errlen) < 0)
			goto out;
		ring[lines % need].not_before = now;
		lines++;
	}
	if (lines < need) {
		snprintf(err, errlen, "%s: %u key%s; HAProxy's format needs at least %u "
			 "(control.ticket_keys): the penultimate seals, the last %u open",
			 path, lines, lines == 1 ? "" : "s", need, need);
		goto out;
	}
	/* The order of HAProxy's search: from the penultimate slot on. */
	head = (lines - 2) % need;

	for (unsigned i = 0; i < need; i++)
		keys[i] = ring[(head + i) % need];
	rc = (int)need;
out:
	OPENSSL_cleanse(ring, sizeof(ring));
	return rc;
}

/* An RFC 3339 UTC time (2026-12-05T11:00:00Z) of n bytes at s: seconds
 * since the epoch, or -1. */
static long long tk_time(const char *s, size_t n)
{
	char buf[32];
	struct tm tm = { 0 };
	const char *end;

	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = 0;
	end = strptime(buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end)
		return -1;
	return (long long)timegm(&tm);
}

/* The next whitespace-separated field of the line [*s, end): its start and
 * length, *s moved past it; false at the end. */
static bool tk_field(const char **s, const char *end, const char **f, size_t *n)
{
	while (*s < end && (**s == ' ' || **s == '\t'))
		(*s)++;
	if (*s == end)
		return false;
	*f = *s;
	while (*s < end && **s != ' ' && **s != '\t')
		(*s)++;
	*n = (size_t)(*s - *f);
	return true;
}

/* Does the first key line of d have more than one field (the windowed
 * format, three when right; HAProxy's lines have one)? */
static bool tk_is_windowed(const char *d)
{
	for (const char *p = d; *p;) {
		const char *nl = strchr(p, '\n'), *end = nl ? nl : p + strlen(p), *s = p, *f;
		size_t n;
		unsigned fields = 0;

		while (tk_field(&s, end, &f, &n))
			if (*f == '#' && !fields)
				break;
			else
				fields++;
		if (fields)
			return fields > 1;
		p = nl ? nl + 1 : end;
	}
	return false;
}

/* sluice's windowed format: see the top of this file. */
static int tk_parse_windowed(const char *path, const char *d, struct tls_ticket_key *keys,
			     char *err, size_t errlen)
{
	unsigned n = 0, lineno = 0;
	int size = 0, rc = -EINVAL;

	for (const char *p = d; *p;) {
		const char *nl = strchr(p, '\n'), *end = nl ? nl : p + strlen(p), *s = p;
		const char *f[4];
		size_t fl[4];
		unsigned fields = 0;
		long long nb, na;

		lineno++;
		p = nl ? nl + 1 : end;
		while (end > s && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
			end--;
		while (fields < 4 && tk_field(&s, end, &f[fields], &fl[fields]))
			fields++;
		if (!fields || *f[0] == '#')
			continue;
		if (fields != 3) {
			snprintf(err, errlen, "%s: line %u: not NOT_BEFORE NOT_AFTER KEY (the "
				 "times in RFC 3339 UTC, 2026-12-05T11:00:00Z; the key base64)",
				 path, lineno);
			goto out;
		}
		if ((nb = tk_time(f[0], fl[0])) < 0 || (na = tk_time(f[1], fl[1])) < 0) {
			snprintf(err, errlen, "%s: line %u: a time is not RFC 3339 UTC "
				 "(2026-12-05T11:00:00Z)", path, lineno);
			goto out;
		}
		if (na <= nb) {
			snprintf(err, errlen, "%s: line %u: NOT_AFTER is not after NOT_BEFORE",
				 path, lineno);
			goto out;
		}
		if (n == TLS_TICKET_KEYS_MAX) {
			snprintf(err, errlen, "%s: line %u: more than %d keys", path, lineno,
				 TLS_TICKET_KEYS_MAX);
			goto out;
		}
		/* In the ring newest first: the key that seals is the first
		 * whose window has begun (tls_ticket_sealing). */
		unsigned i = n;

		struct tls_ticket_key k;

		if (tk_line_key(path, lineno, f[2], fl[2], &size, &k, err, errlen) < 0)
			goto out;
		while (i > 0 && keys[i - 1].not_before < nb) {
			keys[i] = keys[i - 1];
			i--;
		}
		keys[i] = k;
		OPENSSL_cleanse(&k, sizeof(k));
		keys[i].not_before = nb;
		keys[i].not_after = na;
		n++;
	}
	if (!n) {
		snprintf(err, errlen, "%s: no key", path);
		goto out;
	}
	rc = (int)n;
out:
	if (rc < 0)
		OPENSSL_cleanse(keys, TLS_TICKET_KEYS_MAX * sizeof(*keys));
	return rc;
}

/* nginx's: 80 bytes per key, name, HMAC, AES. */
static int tk_parse_nginx(const char *path, const unsigned char *d, size_t len,
			  struct tls_ticket_key *keys, long long now, char *err, size_t errlen)
{
	if (len == 0 || len % 80 || len > TLS_TICKET_KEYS_MAX * 80) {
		snprintf(err, errlen, "%s: %zu bytes; expected 80 per key, 1 to %d keys "
			 "(make one with: openssl rand 80 > FILE), or HAProxy's base64 lines",
			 path, len, TLS_TICKET_KEYS_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < len / 80; i++) {
		memset(&keys[i], 0, sizeof(keys[i]));
		memcpy(keys[i].name, d + i * 80, 16);
		memcpy(keys[i].hmac, d + i * 80 + 16, 32);
		memcpy(keys[i].aes, d + i * 80 + 48, 32);
		keys[i].hmac_len = keys[i].aes_len = 32;
		keys[i].not_before = now;
	}
	return (int)(len / 80);
}

int tls_ticket_file_read(const struct cfg *c, struct tls_ticket_key *keys, long long now,
			 struct stat *st_out, char *err, size_t errlen)
{
	const char *path = c->tickets.key_file;
	char *data = NULL;
	size_t len = 0;
	unsigned mode = 0;
	int rc;

	if ((rc = tk_file_load(c, &data, &len, &mode, st_out, err, errlen)) < 0)
		return rc;
	if (mode & 077) {
		snprintf(err, errlen, "%s: mode %04o: group or others may read it, and a ticket "
			 "key decrypts every session it sealed (chmod 600 %s)", path, mode, path);
		rc = -EPERM;
	} else if (len && tk_is_text(data, len) && tk_is_windowed(data)) {
		rc = tk_parse_windowed(path, data, keys, err, errlen);
	} else if (len && tk_is_text(data, len)) {
		rc = tk_parse_haproxy(c, data, keys, now, err, errlen);
	} else {
		rc = tk_parse_nginx(path, (const unsigned char *)data, len, keys, now, err, errlen);
	}
	OPENSSL_cleanse(data, len);
	free(data);
	return rc;
}

/* May user (uid, its groups) search directory st? */
static bool tk_dir_searchable(const struct stat *st, uid_t uid, const gid_t *groups, int ng)
{
	if (st->st_uid == uid)
		return st->st_mode & S_IXUSR;
	for (int i = 0; i < ng; i++)
		if (groups[i] == st->st_gid)
			return st->st_mode & S_IXGRP;
	return st->st_mode & S_IXOTH;
}

/*
 * The dataplane reads the key file as root at start, then re-reads it as
 * `user:` when it changes (issue 12, finding 5): the file must be that
 * user's (group and others are refused anyway), and every folder above it
 * searchable by it. Else a key file root alone may read would silently
 * stop rotation at its first change.
 */
int tls_ticket_file_owner_check(const struct cfg *c, char *err, size_t errlen)
{
	const char *path = c->tickets.key_file;
	gid_t groups[64];
	int ng = 64;
	struct passwd *pw;
	struct stat st;
	char dir[4096], *slash;

	if (!c->tickets.enabled || !path || !c->user)
		return 0;
	if (!(pw = getpwnam(c->user))) {
		snprintf(err, errlen, "%s:%u: tickets.key_file: no such user '%s' (user:)", c->path,
			 c->tickets.key_file_line, c->user);
		return -ENOENT;
	}
	if (pw->pw_uid == 0)
		return 0;
	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "%s:%u: tickets.key_file: %s: %s", c->path,
			 c->tickets.key_file_line, path, strerror(errno));
		return -errno;
	}
	if (st.st_uid != pw->pw_uid) {
		snprintf(err, errlen, "%s:%u: tickets.key_file: %s belongs to uid %u, but sluice runs "
			 "as user '%s' (uid %u) once started and re-reads the file when it changes: "
			 "chown %s %s (mode 600), or leave tickets.key_file out and let "
			 "sluice-control make and push the keys", c->path, c->tickets.key_file_line,
			 path, (unsigned)st.st_uid, c->user, (unsigned)pw->pw_uid, c->user, path);
		return -EACCES;
	}
	if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &ng) < 0)
		ng = 64;        /* more than 64 groups: the first 64 */
	snprintf(dir, sizeof(dir), "%s", path);
	while ((slash = strrchr(dir, '/'))) {
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
		if (stat(dir[0] ? dir : ".", &st) == 0 &&
		    !tk_dir_searchable(&st, pw->pw_uid, groups, ng)) {
			snprintf(err, errlen, "%s:%u: tickets.key_file: user '%s' cannot reach %s: "
				 "folder %s (mode %04o, uid %u) is closed to it; open it (chmod o+x) "
				 "or move the file", c->path, c->tickets.key_file_line, c->user,
				 path, dir, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
			return -EACCES;
		}
		if (!strcmp(dir, "/"))
			break;
	}
	return 0;
}

int tls_ticket_file_check(const struct cfg *c, char *err, size_t errlen)
{
	struct tls_ticket_key keys[TLS_TICKET_KEYS_MAX];
	char e[512];
	int rc;

	if (!c->tickets.enabled || !c->tickets.key_file)
		return 0;
	/* A bundle without the key file: the dataplane (unprivileged by now)
	 * keeps the keys it has and re-reads the file itself if it can. */
	if (c->files && !cfg_files_find(c->files, c->tickets.key_file))
		return 0;
	if ((rc = tls_ticket_file_owner_check(c, err, errlen)) < 0)
		return rc;
	rc = tls_ticket_file_read(c, keys, 0, NULL, e, sizeof(e));
	OPENSSL_cleanse(keys, sizeof(keys));
	if (rc < 0) {
		snprintf(err, errlen, "%s:%u: tickets.key_file: %s", c->path,
			 c->tickets.key_file_line, e);
		return rc;
	}
	return 0;
}
