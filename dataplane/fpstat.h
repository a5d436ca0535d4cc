/* The per-fingerprint table of each core (fpstat.c). */
#ifndef SLUICE_FPSTAT_H
#define SLUICE_FPSTAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FP_SLOTS  1024 /* per core, a power of two; filled to 3/4 at most */
#define FP_PROBES 16
#define FP_POLICIES 3  /* CFG_POLICY_COUNT */
#define FP_HELLO_MAX 4096 /* bytes of a ClientHello record kept; a longer
			     one is kept cut, and says so (hello_len) */
#define FP_STALE_S 86400  /* an entry not seen for this long may be reused
			     for another fingerprint once the table is full */
#define FP_LISTENER_MAX 48
#define FP_CLIENTS 4      /* distinct recent client addresses kept per entry */
#define FP_IP_MAX 46      /* INET6_ADDRSTRLEN */

/*
 * The bytes of one ClientHello, in a block that is never freed while its
 * table lives (a reader on another thread may still be copying it; see
 * fpstat.c). cap is written once, before the block is published.
 */
struct fp_hello_buf {
	struct fp_hello_buf *retired; /* the table's list of replaced blocks */
	uint32_t cap;
	uint8_t b[];
};

/*
 * One (JA4, listener): written by its core only. Readers on other threads
 * go through fp_read(), which copies it under seq (a sequence lock: odd
 * while the core writes, so a copy that saw it change is thrown away).
 */
struct fp_entry {
	uint32_t seq;               /* even: stable; odd: being written; 0: never used */
	bool used;                  /* the core's own view: the slot holds a key */
	char ja4[40];
	char listener[FP_LISTENER_MAX]; /* the listener's name */
	uint64_t hello, ok, fail;   /* ClientHellos read, handshakes done, failed */
	long long first_seen, last_seen; /* wall clock, seconds */
	char client[48];            /* the last client address */
	char ips[FP_CLIENTS][FP_IP_MAX]; /* the last distinct client addresses
				       (no port): a policy_by_network rule may
				       treat them differently */
	uint8_t n_ips, next_ip;
	char version[16];           /* the last version agreed, "TLSv1.2" */
	const char *verdict[FP_POLICIES]; /* under each policy, with the
				       listener's cert set: "ok", or the
				       tls/certsel rule that fails (static) */
	struct fp_hello_buf *raw;   /* the first ClientHello's records */
	uint32_t raw_len;           /* bytes of it in raw (<= raw->cap) */
	uint32_t hello_len;         /* its whole length: > raw_len when cut */
};

struct fp_table {
	struct fp_entry slot[FP_SLOTS];
	unsigned n;
	uint64_t others;            /* hellos not kept: the table was full */
	unsigned stale_s;           /* FP_STALE_S unless set after fp_table_new() */
	struct fp_hello_buf *retired; /* blocks replaced on reuse, freed with the table */
};

/* A copy of an entry, as a reader on another thread sees it (fp_read). */
struct fp_view {
	char ja4[40];
	char listener[FP_LISTENER_MAX];
	uint64_t hello, ok, fail;
	long long first_seen, last_seen;
	char client[48];
	char ips[FP_CLIENTS][FP_IP_MAX];
	unsigned n_ips;
	char version[16];
	const char *verdict[FP_POLICIES];
	uint32_t raw_len, hello_len;
	uint8_t raw[FP_HELLO_MAX];
};

struct fp_table *fp_table_new(void);
void fp_table_free(struct fp_table *t);

/*
 * The core's entry of (ja4, listener), made if new (*created then true, for
 * the caller to fill its verdicts and fp_set_hello()); a new one takes an
 * empty slot, or once the table is 3/4 full one not seen since now -
 * stale_s. NULL when neither is found or ja4 is empty (counted in others).
 * A new entry is opened for writing (seq odd): the caller fills it and
 * calls fp_publish(). The core thread only.
 */
struct fp_entry *fp_find(struct fp_table *t, const char *ja4, const char *listener,
			 long long now, bool *created);

/* Keep hello[0, len) as the entry's ClientHello (at most FP_HELLO_MAX of
 * it); between fp_find() making the entry and fp_publish(). 0 or -ENOMEM
 * (then no bytes are kept). */
int fp_set_hello(struct fp_table *t, struct fp_entry *e, const uint8_t *hello, size_t len);

/* The client at addr ("192.0.2.1:25", "[2001:db8::1]:25", fmt_addr's
 * form) made the hello: e->client, and its address among e->ips. Between
 * fp_find() and fp_publish(). */
void fp_note_client(struct fp_entry *e, const char *addr);

/* Open e for writing (seq odd), and close it (seq even again): every
 * change of an entry by its core is between the two. No atomic
 * read-modify-write: the core is the only writer. */
void fp_write_begin(struct fp_entry *e);
void fp_publish(struct fp_entry *e);

/*
 * Copy t->slot[i] into *v from any thread. Returns 1 with a consistent
 * copy, 0 when the slot is empty or the core kept changing it (retried a
 * few times first).
 */
int fp_read(const struct fp_table *t, unsigned i, struct fp_view *v);

/* Merge the tables and emit one line per fingerprint; returns how many. */
size_t fp_report(struct fp_table *const *tables, unsigned n_tables, const char *const *policy_names,
		 unsigned n_policies, void (*emit)(const char *line));

#endif
