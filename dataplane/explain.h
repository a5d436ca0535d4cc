/* `sluice explain` (explain.c). */
#ifndef SLUICE_EXPLAIN_H
#define SLUICE_EXPLAIN_H

int explain_main(int argc, char **argv);

#endif
