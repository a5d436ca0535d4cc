/* What impact.c and impact_print.c share: reading the result's fields. */
#ifndef SLUICE_IMPACT_INT_H
#define SLUICE_IMPACT_INT_H

#include <jansson.h>

static inline long long jint(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

static inline const char *jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

#endif
