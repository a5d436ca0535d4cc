/*
 * Every key of the configuration file, one path a line, from the libcyaml
 * schema itself (firmware-config/config.c: cfg_schema):
 *
 *   hostname
 *   listeners[].timeouts.plaintext
 *   native.ports[].device
 *
 * A sequence of mappings adds "[]". tests/check_man_keys.py compares this
 * list with the keys man/sluice.yaml.5.scd describes, so that the manual
 * and the schema cannot drift apart.
 */
#include <stdio.h>

#include "config_int.h"

static void walk(const cyaml_schema_value_t *v, const char *prefix)
{
	char path[512];

	if (v->type == CYAML_SEQUENCE || v->type == CYAML_SEQUENCE_FIXED) {
		snprintf(path, sizeof(path), "%s[]", prefix);
		if (v->sequence.entry->type == CYAML_MAPPING)
			walk(v->sequence.entry, path);
		return;
	}
	if (v->type != CYAML_MAPPING)
		return;
	for (const cyaml_schema_field_t *f = v->mapping.fields; f->key; f++) {
		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", f->key);
		printf("%s\n", path);
		walk(&f->value, path);
	}
}

int main(void)
{
	walk(&cfg_schema, "");
	return 0;
}
