/*
 * A configuration with its certificates loaded and proved usable: what the
 * dataplane builds a snapshot from, and what sluice-control validates a
 * reload or a staged change with before it sends anything. Both run the
 * same code on the same bytes, so the control plane's "ok" is the
 * dataplane's.
 */
#ifndef SLUICE_TLS_CONF_H
#define SLUICE_TLS_CONF_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "files.h"

struct tls_certset;

/* The cert sets one listener answers with: the default (SNI matches none)
 * first. Indexes into tls_conf.sets. */
struct tls_conf_listener {
	uint16_t *set_ids;
	unsigned n_sets;         /* 0 for tls: off */
	uint8_t policies;        /* bit per enum cfg_policy it can use */
};

struct tls_conf {
	struct cfg *c;           /* owned */
	struct tls_certset **sets; /* the named sets, then the listeners' own */
	unsigned n_sets;
	struct tls_conf_listener *l; /* [c->n_listeners] */
};

/*
 * Parse yaml (the file's text; name for messages), read the certificates
 * and keys through files (NULL: the disk), check every certificate under
 * every policy a listener uses it with (rule 2.5: an SSL_CTX is built and
 * thrown away), and fill *out. On error "FILE:LINE: KEY: reason" in err,
 * <0, nothing kept.
 */
int tls_conf_load(const char *yaml, size_t len, const char *name, const struct cfg_files *files,
		  struct tls_conf *out, char *err, size_t errlen);
/* The same from a file on disk (yaml and certificates). */
int tls_conf_load_file(const char *path, struct tls_conf *out, char *err, size_t errlen);
void tls_conf_free(struct tls_conf *tc);

/* The cert sets of listener i as pointers, for tls_certset_for_sni(). */
static inline struct tls_certset *tls_conf_set(const struct tls_conf *tc, unsigned listener,
					       unsigned k)
{
	return tc->sets[tc->l[listener].set_ids[k]];
}

#endif
