/* Per-core counters, from counters.def. */
#ifndef SLUICE_COUNTERS_H
#define SLUICE_COUNTERS_H

#include <stdint.h>

enum counter_id {
#define C(n, h) CTR_##n,
#include "counters.def"
#undef C
	CTR__COUNT
};

#include "lslot.h"

struct counters {
	uint64_t v[LSLOT_MAX][CTR__COUNT]; /* by listener slot (lslot.h) */
};

extern const char *const counter_names[CTR__COUNT];
extern const char *const counter_help[CTR__COUNT];

#endif
