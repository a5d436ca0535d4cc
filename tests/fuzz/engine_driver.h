/*
 * The driver shared by the libFuzzer targets of the IMAP and POP3 engines
 * (fuzz_imap, fuzz_pop3): it runs an engine as a session drives it.
 *
 * Input: a 5-byte header, then three parts. Header byte 0: bits 0-1 the
 * listener's tls mode, bit 2 a certificate is loaded, bit 3 the
 * capabilities come from the probe (else the target's fixed list), bits 4-7
 * the seed of the read sizes; bytes 1-2 and 3-4 (big-endian) the lengths of
 * the first two parts (clamped).
 *  1. what the client sends before the backend is needed, in reads of
 *     varying size, through the real line reader, honouring out.literal
 *     with lr_literal() exactly as sess_dialogue() does; a TLS start is
 *     followed by ->tls_started() and a fresh line reader, what followed it
 *     in the same read discarded (rule 2.1);
 *  2. what the backend sends: first as the capability probe's answer (its
 *     caps, when header bit 3 says so, are what the dialogue advertises),
 *     then as the backend's opening;
 *  3. what the client sends in the relay, through the tracker, fed in
 *     pieces of varying size, held bytes offered again.
 * Invariants checked, besides the sanitizers' and the target's check_out():
 * the line reader never consumes more than it was given; a literal to skip
 * is never over literal_max and only follows a whole line that does nothing
 * else; TLS starts only on a line is_tls_verb() accepts, outside TLS; the
 * tracker never approves more than it was given and changes nothing but
 * verb into denied, in place; a STARTTLS the plaintext tracker holds is
 * a whole line that proto_late_starttls answers (once everything before
 * it is taken as answered).
 */
#ifndef SLUICE_FUZZ_ENGINE_DRIVER_H
#define SLUICE_FUZZ_ENGINE_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

struct fz_engine {
	enum cfg_proto proto;
	const char *const *fixed_caps;  /* the capabilities without a probe */
	size_t n_fixed;
	/* aborts unless o is a well-formed answer of the protocol */
	void (*check_out)(const struct proto_out *o);
	/* may this line start TLS? */
	bool (*is_tls_verb)(const char *l, size_t len);
	uint64_t literal_max;           /* 0: the engine never asks for a literal */
	const char *verb, *denied;      /* the tracker's rewrite, same length */
};

/* Run one input through engine e; returns 0 (libFuzzer's convention), or
 * aborts on a broken invariant. */
int fz_run(const struct fz_engine *e, const uint8_t *data, size_t size);

#endif
