/* `sluice --ports` (ports.c). */
#ifndef SLUICE_PORTS_H
#define SLUICE_PORTS_H

/* Prints what the configuration at path (NULL: the embedded default) asks
 * of the machine for the native stack. Returns the exit status. */
int ports_main(const char *path);

#endif
