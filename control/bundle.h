/*
 * A configuration as sluice-control holds it: the YAML file's text, every
 * file it names read into a struct cfg_files bundle (firmware-config/
 * files.h), and the tls_conf proved from exactly those bytes with the
 * dataplane's own code (tls/conf.h). What `load` sends is this bundle, so
 * what sluice-control validated is what the dataplane builds.
 */
#ifndef SLUICE_CTL_BUNDLE_H
#define SLUICE_CTL_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "files.h"
#include "tls/conf.h"

struct bundle {
	char *path;              /* the configuration file; NULL: the embedded default */
	char *yaml;              /* its text, NUL-terminated */
	size_t len;
	struct cfg_files files;  /* every certificate, key and ticket key file it names */
	struct tls_conf tc;      /* proved from yaml + files */
	bool valid;              /* tc is loaded */
};

/*
 * Read path (NULL: the embedded default) and every file it names, then
 * validate as the dataplane will. 0, or <0 with "FILE:LINE: KEY: reason" in
 * err and b left empty. A file that cannot be read is left out of the
 * bundle: tls_conf_load then names it, its line and key.
 */
int bundle_read(struct bundle *b, const char *path, char *err, size_t errlen);
/* Validate b's yaml and files (after a staged edit): fills b->tc. */
int bundle_validate(struct bundle *b, char *err, size_t errlen);
/* A deep copy of src's text and files, not validated. */
int bundle_copy(struct bundle *dst, const struct bundle *src);
void bundle_free(struct bundle *b);
/* The dataplane's `load` request for b (docs/control.md), or NULL. */
json_t *bundle_load_request(const struct bundle *b, bool force, char *err, size_t errlen);

#endif
