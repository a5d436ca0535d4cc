/* Reload: a new configuration becomes a snapshot, or nothing changes
 * (reload.c). */
#ifndef SLUICE_RELOAD_H
#define SLUICE_RELOAD_H

#include <stdbool.h>
#include <stdint.h>

struct be_pool;

struct reload_status {
	bool ok;                   /* the last reload (none yet: false, time 0) */
	long long time_s;
	char source[32];           /* "SIGHUP", "sluice-control" */
	char error[1024];
	uint64_t n_ok, n_failed;
};

/* The backend pools the snapshots' listeners use (made at start-up). */
void reload_init(struct be_pool *pools, unsigned n_pools);
/* Re-read path (NULL: the embedded default: refused) and its files. 0, or
 * <0 with "FILE:LINE: KEY: reason" in err; logged and recorded either way. */
int reload_from_disk(const char *path, char *err, size_t errlen);
/* Once a second: free the snapshots no core can reach; how many wait. */
unsigned reload_tick(void);
struct reload_status reload_status(void);

#endif
