#include <stdio.h>
#include <string.h>

#include "quirk/quirk.h"

const char *const quirk_words[QUIRK__COUNT] = {
#define Q(n, w, act, why, h) w,
#include "quirk/quirk.def"
#undef Q
};

const char *const quirk_reasons[QUIRK__COUNT] = {
#define Q(n, w, act, why, h) why,
#include "quirk/quirk.def"
#undef Q
};

unsigned quirk_hold_ms(uint32_t rtt_us, unsigned max_ms)
{
	uint64_t hold;

	if (!max_ms || !rtt_us)
		return max_ms;
	hold = ((uint64_t)QUIRK_HOLD_RTTS * rtt_us + 999) / 1000;
	if (hold < QUIRK_HOLD_MIN_MS)
		hold = QUIRK_HOLD_MIN_MS;
	return hold < max_ms ? (unsigned)hold : max_ms;
}

char *quirk_list(uint32_t set, char *out, size_t len)
{
	size_t o = 0;
	unsigned i;

	out[0] = 0;
	for (i = 0; i < QUIRK__COUNT && o + 1 < len; i++)
		if (set & (1u << i))
			o += (size_t)snprintf(out + o, len - o, "%s%s", o ? "," : "", quirk_words[i]);
	if (!o)
		snprintf(out, len, "-");
	return out;
}
