/* sluicectl's parts: the verbs (verbs.def) and their human output. */
#ifndef SLUICE_CTL_SLUICECTL_H
#define SLUICE_CTL_SLUICECTL_H

#include <jansson.h>

/* The printers of verbs.def: the answer (ok) as people read it. */
#define V(id, words, cmd, handler, printer, args, help) void printer(json_t *a);
#include "verbs.def"
#undef V

/* Rows of cells printed as aligned columns, "ip -br" style. */
struct table {
	char ***rows;
	unsigned n, cols;
};
void table_row(struct table *t, unsigned cols, ...);   /* cols strings, copied */
void table_print(struct table *t);                    /* and frees it */

#endif
