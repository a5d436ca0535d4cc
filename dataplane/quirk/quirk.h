/* The quirk table as an enum, names, log words and reasons (from quirk.def). */
#ifndef SLUICE_QUIRK_H
#define SLUICE_QUIRK_H

#include <stddef.h>
#include <stdint.h>

enum quirk_id {
#define Q(n, w, act, why, h) QUIRK_##n,
#include "quirk/quirk.def"
#undef Q
	QUIRK__COUNT
};

extern const char *const quirk_words[QUIRK__COUNT];
/* What the client did, for a log line's reason: "bytes pipelined behind STARTTLS". */
extern const char *const quirk_reasons[QUIRK__COUNT];

/*
 * Implicit TLS on a STARTTLS port (iOS Mail on 587): how long to hold the
 * greeting for a ClientHello. A client that starts TLS at once sends its
 * hello right behind the handshake's ACK, so about two of the connection's
 * round trips (rtt_us, its TCP's srtt) are enough; never less than
 * QUIRK_HOLD_MIN_MS, for the client's own start-up and the core's 10 ms
 * timer tick, and never more than max_ms (detect_implicit_ms). No
 * measurement (rtt_us 0): max_ms. max_ms 0: no hold.
 */
#define QUIRK_HOLD_RTTS   2
#define QUIRK_HOLD_MIN_MS 10
unsigned quirk_hold_ms(uint32_t rtt_us, unsigned max_ms);

/* "second-starttls,bare-lf" for a set of quirks, or "-". */
char *quirk_list(uint32_t set, char *out, size_t len);

#endif
