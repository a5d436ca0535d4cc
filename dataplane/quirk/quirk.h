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

/* "second-starttls,bare-lf" for a set of quirks, or "-". */
char *quirk_list(uint32_t set, char *out, size_t len);

#endif
