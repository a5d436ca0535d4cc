/*
 * tickets.export (ticket_export.c): write the ticket-key ring of
 * control/tickets.c to path, atomically, mode 0600, in the windowed
 * key-file format the dataplane reads as tickets.key_file. now: for the
 * header. The number of keys written, or -errno with "PATH: reason" in err
 * (the old file, if any, stays).
 */
#ifndef SLUICE_CONTROL_TICKET_EXPORT_H
#define SLUICE_CONTROL_TICKET_EXPORT_H

#include <stddef.h>

int tk_export(const char *path, long long now, char *err, size_t errlen);

#endif
