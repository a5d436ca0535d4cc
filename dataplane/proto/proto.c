/* The protocol table and helpers shared by the engines. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto.h"

#define P(e, name, ops) extern const struct proto_ops ops;
#include "proto.def"
#undef P

const struct proto_ops *proto_get(enum cfg_proto p)
{
	switch (p) {
#define P(e, name, ops) case CFG_PROTO_##e: return &ops;
#include "proto.def"
#undef P
	default:
		return NULL;
	}
}

void po_reset(struct proto_out *o)
{
	o->flags = 0;
	o->literal = 0;
	o->counter = -1;
	o->reason = NULL;
	o->reply_len = 0;
	o->to_backend_len = 0;
}

static void po_vappend(char *buf, size_t cap, size_t *len, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf + *len, cap - *len, fmt, ap);

	if (n < 0)
		return;
	*len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
}

void po_reply(struct proto_out *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	po_vappend(o->reply, sizeof(o->reply), &o->reply_len, fmt, ap);
	va_end(ap);
}

void po_backend(struct proto_out *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	po_vappend(o->to_backend, sizeof(o->to_backend), &o->to_backend_len, fmt, ap);
	va_end(ap);
}

void caps_free(struct proto_caps *c)
{
	unsigned i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++)
		free(c->item[i]);
	free(c);
}
