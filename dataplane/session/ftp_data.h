/*
 * FTP's passive data connections, for the session (ftp_data.c; docs/ftp.md).
 * Not for use outside dataplane/session/.
 */
#ifndef SLUICE_FTP_DATA_H
#define SLUICE_FTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"
#include "tls.h"

struct sess;

/* The backend's whole line l that the engine's b2c_safe stopped at (the
 * reply to PASV/EPSV, or a transfer's final reply). Returns 1 when the
 * line must wait (its data connection is being checked); else 0 with o
 * empty: relay the line as it is; or o->reply replaces it (sluice's data
 * port in a 227/229, a 425, a 426), counted in o->counter. */
int fdata_passive(struct sess *s, const char *l, size_t len, struct proto_out *o);
/* The data connection's I/O, from sess_run. True if anything moved. */
bool fdata_run(struct sess *s);
/* The data connection's deadline (a listener's data_timeout, the linger
 * after our FIN) in ms, 0 for none; one that passed is acted on. */
uint64_t fdata_deadline(struct sess *s);
/* Close and free the data connection (the session ends, or a new PASV). */
void fdata_free(struct sess *s);
/* A handshake job came back: true if it is a data connection's (handled). */
bool fdata_job(struct tls_job *j);
/* The control connection's handshake is done: the EMS rule of an FTP
 * listener (counted; false when ftp.require_ems refuses it, result set). */
bool fdata_control_tls(struct sess *s);

#endif
