/*
 * The ticket key file parser (tls/ticket_file.c) on any bytes: HAProxy's
 * base64 lines or nginx's binary keys, read through a files bundle as
 * sluice-control sends it. It must never crash, leak or read out of
 * bounds; what it accepts has 1 to TLS_TICKET_KEYS_MAX keys of valid sizes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "resume.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tls_ticket_key keys[TLS_TICKET_KEYS_MAX];
	struct cfg_files b = { 0 };
	struct cfg c;
	char err[512];
	int n;

	if (size < 1)
		return 0;
	memset(&c, 0, sizeof(c));
	c.path = (char *)"fuzz.yaml";
	c.tickets.enabled = true;
	c.tickets.key_file = (char *)"/fuzz/ticket.keys";
	c.control.ticket_keys = 2 + data[0] % 7;     /* 2..8, as the loader allows */
	if (cfg_files_put(&b, c.tickets.key_file, (const char *)data + 1, size - 1, 0600) < 0)
		return 0;
	c.files = &b;
	n = tls_ticket_file_read(&c, keys, 1, NULL, err, sizeof(err));
	if (n > TLS_TICKET_KEYS_MAX)
		abort();
	for (int i = 0; i < n; i++)
		if ((keys[i].aes_len != 16 && keys[i].aes_len != 32) ||
		    keys[i].hmac_len != keys[i].aes_len)
			abort();
	if (n < 0 && !err[0])
		abort();
	cfg_files_clear(&b);
	return 0;
}
