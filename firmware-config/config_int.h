/*
 * What config.c shares with the loader's other parts: the line index
 * (config_lines.c), the error messages (config_errors.c), addresses
 * (config_addr.c), the native section (config_native.c), limits, backend TLS
 * and certificates (config_tls.c): the load context, the error helpers and the
 * schema pieces. Not for the rest of sluice, which reads config.h.
 */
#ifndef SLUICE_CONFIG_INT_H
#define SLUICE_CONFIG_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <cyaml/cyaml.h>

#include "config.h"

#define CFG_PATH_MAX  256
#define CFG_MSG_MAX   512
#define CFG_BT_MAX    16

/*
 * What one configuration may hold (issue 12, finding 3): every sequence
 * and string of the schema has a bound, so that a file under CFG_FILE_MAX
 * can never load into more than a few MiB. Far above any real mail front.
 */
#define CFG_STR_MAX        4096  /* a path, a name, an address */
#define CFG_HOSTNAME_MAX   253   /* RFC 1035 2.3.4, without the final dot */
#define CFG_LISTENERS_MAX  256
#define CFG_BACKENDS_MAX   256
#define CFG_SERVERS_MAX    64    /* per backend */
#define CFG_CERT_SETS_MAX  256
#define CFG_CERTS_MAX      16    /* per listener or cert set */
#define CFG_NAMES_MAX      1024  /* per cert set */
#define CFG_RULES_MAX      256   /* policy_by_network rules per listener */
#define CFG_LIST_MAX       256   /* any other list (EAL args, CPUs) */

struct cfg_mark {
	char *path;             /* "listeners[1].tls"; "" is the document root */
	unsigned kline;         /* line of the key (of the entry, in a sequence) */
	unsigned vline;         /* line of the value */
};

enum cfg_bt_kind { CFG_BT_MAPPING, CFG_BT_FIELD, CFG_BT_ENTRY };

struct cfg_bt {                 /* one "  in ..." line of libcyaml's backtrace */
	enum cfg_bt_kind kind;
	unsigned entry;         /* CFG_BT_ENTRY: libcyaml's count, index + 1 */
	char field[64];
};

/* One load: where messages go, the line index, libcyaml's first error. */
struct cfg_ld {
	const char *name;       /* file name for messages */
	char *err;
	size_t errlen;
	struct cfg_mark *marks; /* owned, freed by cfg_index_free */
	size_t n_marks, cap_marks;
	char msg[CFG_MSG_MAX];  /* first error libcyaml logged, "Load: " removed */
	struct cfg_bt bt[CFG_BT_MAX]; /* its backtrace, innermost first */
	unsigned n_bt;
	bool bt_open;
};

/* The whole document's schema (config.c). */
extern const cyaml_schema_value_t cfg_schema;

/* ---- the line index (config_lines.c) ---- */

/* Parse the whole stream with libyaml and index its document. Returns 0,
 * -EINVAL with a syntax error in ld->err, or -ENOMEM. */
int cfg_index(struct cfg_ld *ld, const char *yaml, size_t len);
/* Free the index of a load. */
void cfg_index_free(struct cfg_ld *ld);

/* ---- messages (config_errors.c) ---- */

/* Write "NAME:LINE: PATH: reason" (no LINE if 0, no PATH if empty); returns rc. */
int cfg_fail(struct cfg_ld *ld, int rc, unsigned line, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* cyaml_config.log_fn: keep the first error and its backtrace, print nothing. */
void cfg_cyaml_log(cyaml_log_t level, void *ctx, const char *fmt, va_list ap);
/* libcyaml's error and backtrace as "NAME:LINE: PATH: reason"; -ENOMEM or -EINVAL. */
int cfg_cyaml_fail(struct cfg_ld *ld, cyaml_err_t e);

/* An error about the value at path, on its line; returns -EINVAL. */
int cfg_err(struct cfg_ld *ld, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "out of memory"; returns -ENOMEM. */
int cfg_oom(struct cfg_ld *ld);
/* Was path written in the document? */
bool cfg_present(const struct cfg_ld *ld, const char *path);
/* Line of path (of its key if key, else of its value). */
unsigned cfg_line(const struct cfg_ld *ld, const char *path, bool key, bool last);
/* Check lo <= *v <= hi, or apply def if path is absent; 0 or -EINVAL. */
int cfg_uint(struct cfg_ld *ld, const char *path, unsigned *v, unsigned def, unsigned lo,
	     unsigned hi);

/* ---- addresses (config_addr.c) ---- */

/* cfg_parse_addr with the error written for path; 0 or negative errno. */
int cfg_addr_at(struct cfg_ld *ld, const char *path, const char *s,
		struct sockaddr_storage *ss, socklen_t *len);
/* Same family, address and port. */
bool cfg_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* The schema of the `native` mapping (config_native.c). */
extern const cyaml_schema_field_t cfg_native_fields[];
/* Defaults, addresses and cross-checks of the native section (listeners on
 * a port's address, backends reachable from a port). 0 or -EINVAL/-ENOMEM. */
int cfg_check_native(struct cfg_ld *ld, struct cfg *c);

/* The `limits` mapping and a listener's `limits` (config_limits.c). */
#define CFG_NETS_MAX 4096       /* networks in one list */
extern const cyaml_schema_field_t cfg_limits_fields[];
extern const cyaml_schema_field_t cfg_addr_limits_fields[];
/* Defaults and ranges of limits:, its networks resolved. 0 or -EINVAL/-ENOMEM. */
int cfg_check_limits(struct cfg_ld *ld, struct cfg *c);
/* Listener i's limits: the global per_address where not given. */
int cfg_check_listener_limits(struct cfg_ld *ld, struct cfg *c, unsigned i);

/* Backend i's TLS keys (config_backend_tls.c): defaults, what goes with
 * what, the pin decoded, the files readable. 0 or -EINVAL. */
int cfg_check_backend_tls(struct cfg_ld *ld, struct cfg *c, unsigned i);

/* Certificates and TLS policy (config_tls.c): cert set i checked (unique
 * name, host names, key types, lines); listener i's cert sets resolved,
 * its policy and network rules parsed. 0 or -EINVAL/-ENOMEM. */
int cfg_check_cert_set(struct cfg_ld *ld, struct cfg *c, unsigned i);
/* A host name (RFC 1123 2.1): labels of letters, digits and hyphens (not
 * first), at most 253 characters, no final dot; with wildcard, "*." may
 * come before it (RFC 6125 6.4.3: the leftmost label only), as a
 * certificate may carry it. */
bool cfg_host_name_ok(const char *n, bool wildcard);
int cfg_check_listener_tls(struct cfg_ld *ld, struct cfg *c, unsigned i);

/* A listener's ftp: mapping (config_ftp.c): defaults, the port range and
 * the data address parsed; only with protocol ftp. 0 or -EINVAL. */
extern const cyaml_schema_field_t cfg_ftp_fields[];
int cfg_check_listener_ftp(struct cfg_ld *ld, struct cfg *c, unsigned i);

#endif
