/*
 * The byte-stream connection under the session layer (DESIGN.md §6). The
 * session owns its buffers; a network stack moves bytes between them and the
 * wire, and reports readiness through the flags below. This file is the
 * kernel-socket implementation (epoll, edge-triggered); the native stack
 * will provide the same calls over its own TCP.
 */
#ifndef SLUICE_STREAM_H
#define SLUICE_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "buf.h"

enum stream_kind {
	SK_LISTENER,
	SK_CLIENT,
	SK_BACKEND,
	SK_WAKE,
	SK_DEAD,       /* closed: late events are ignored */
};

struct core;

struct stream {
	uint8_t kind;
	bool readable;   /* may have bytes: read until EAGAIN */
	bool writable;   /* may take bytes: write until EAGAIN */
	bool eof;        /* peer finished sending */
	bool failed;     /* reset or error */
	bool shut_wr;    /* we sent FIN */
	bool connecting; /* active open in progress */
	int fd;          /* -1 when closed */
	int err;         /* errno of the failure */
	void *owner;     /* the session, or the listener index */
};

/* Read once into b. Returns bytes read, 0 if nothing now (or buffer full),
 * and sets eof/failed. */
ssize_t stream_recv(struct stream *s, struct buf *b);
/* Send from the head of b, consuming what was taken. Returns bytes sent or
 * 0; sets failed on error. */
ssize_t stream_send(struct stream *s, struct buf *b);
void stream_shutdown_wr(struct stream *s);
/* Start connecting to addr; the stream becomes writable when done. */
int stream_connect(struct core *c, struct stream *s, const struct sockaddr *addr,
		   socklen_t len);
/* Finish an active open: 0 when connected, or -errno. */
int stream_connected(struct stream *s);
int stream_attach(struct core *c, struct stream *s, int fd, uint8_t kind, void *owner);
void stream_close(struct core *c, struct stream *s);

#endif
