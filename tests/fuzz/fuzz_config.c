/*
 * The configuration loader (firmware-config: cfg_load_string) on any
 * bytes: YAML in, a configuration or an error out, never a crash, a leak
 * or unbounded memory. What it returns must be whole: an error has its
 * "FILE:LINE: KEY: reason" text and no configuration, a success a
 * configuration that frees cleanly.
 *
 * No lookups leave the machine: the fuzz build (-Dfuzz=true) defines
 * SLUICE_FUZZ, under which the loader resolves numeric addresses only
 * (config_addr.c); user: and control.admin_group go to getpwnam/getgrnam,
 * which read the local databases (nsswitch: files, systemd).
 *
 * Memory: tests/run gives every target the same options, so this one adds
 * its own bounds in LLVMFuzzerInitialize (later flags win): a config of a
 * few KB that needs more than 256 MB in one allocation or 512 MB in all
 * (an alias bomb) is a finding, not a slow run.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_args.h"

/* cfg_load_file reads at most this much (config.c). */
#define FUZZ_FILE_MAX (1u << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char rss[] = "-rss_limit_mb=512", mal[] = "-malloc_limit_mb=256";
	char *const add[] = { rss, mal };

	fuzz_args_append(argc, argv, add, 2);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg *c = (struct cfg *)data; /* must be set to NULL or a config */
	char err[512];
	char *yaml;
	int rc;

	if (size > FUZZ_FILE_MAX)            /* cfg_load_file's own bound */
		return 0;
	/* Exactly size bytes, no NUL after them: a read past the end is ASAN's. */
	yaml = malloc(size ? size : 1);
	if (!yaml)
		return 0;
	memcpy(yaml, data, size);
	memset(err, 'x', sizeof(err));
	rc = cfg_load_string(yaml, size, "fuzz.yaml", &c, err, sizeof(err));
	if (rc > 0)
		abort();
	if (rc < 0) {
		/* An error names itself: "fuzz.yaml:LINE: ..." and is terminated. */
		if (c || !memchr(err, '\0', sizeof(err)) || strncmp(err, "fuzz.yaml", 9))
			abort();
	} else {
		if (!c || !c->hostname)
			abort();
		cfg_free(c);
	}
	free(yaml);
	return 0;
}
