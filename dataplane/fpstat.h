/* The per-fingerprint table of each core (fpstat.c). */
#ifndef SLUICE_FPSTAT_H
#define SLUICE_FPSTAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FP_SLOTS  1024 /* per core, a power of two; filled to 3/4 at most */
#define FP_PROBES 16
#define FP_POLICIES 3  /* CFG_POLICY_COUNT */

struct fp_entry {
	char ja4[40];
	bool used;
	uint64_t hello, ok, fail;   /* ClientHellos read, handshakes done, failed */
	char client[48];            /* the last client address */
	char version[16];           /* the last version agreed, "TLSv1.2" */
	const char *verdict[FP_POLICIES]; /* under each policy, with the
				       listener's cert set: "ok", or the
				       tls/certsel rule that fails (static) */
};

struct fp_table {
	struct fp_entry slot[FP_SLOTS];
	unsigned n;
	uint64_t others;            /* hellos not kept: the table was full */
};

struct fp_table *fp_table_new(void);
void fp_table_free(struct fp_table *t);

/* The entry of ja4, made if new (*created then true, for the caller to
 * fill its verdicts); NULL when the table is full or ja4 is empty. */
struct fp_entry *fp_find(struct fp_table *t, const char *ja4, bool *created);

/* Merge the tables and emit one line per fingerprint; returns how many. */
size_t fp_report(struct fp_table *const *tables, unsigned n_tables, const char *const *policy_names,
		 unsigned n_policies, void (*emit)(const char *line));

#endif
