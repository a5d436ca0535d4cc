/* sluicectl's parts: the verbs (verbs.def) and their human output. */
#ifndef SLUICE_CTL_SLUICECTL_H
#define SLUICE_CTL_SLUICECTL_H

#include <stddef.h>

#include <jansson.h>

/* The printers of verbs.def: the answer (ok) as people read it. */
#define V(id, words, cmd, handler, printer, args, help) void printer(json_t *a);
#include "verbs.def"
#undef V

/* Send req to sluice-control at path and read its answer; NULL (the
 * reason in err) if it cannot be reached or does not answer in time. */
json_t *sluicectl_ask(const char *path, json_t *req, int timeout_s, char *err, size_t errlen);

/* sluicectl top (top.c): req holds its options (delay, iterations, batch);
 * the exit status. */
int top_run(const char *path, json_t *req);

/* Rows of cells printed as aligned columns, "ip -br" style. */
struct table {
	char ***rows;
	unsigned n, cols;
};
void table_row(struct table *t, unsigned cols, ...);   /* cols strings, copied */
void table_print(struct table *t);                    /* and frees it */

#endif
