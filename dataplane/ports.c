/*
 * `sluice --ports [-c FILE]`: what the configuration asks of the machine
 * for the native stack, one fact a line, for sluice-setup(8) to read
 * without a YAML parser of its own:
 *
 *   stack native              (or "stack kernel", and nothing more)
 *   hugepages yes             eal.hugepages ("no": --no-huge)
 *   memory_mb 256             eal.memory_mb (0: EAL's default)
 *   pci 0000:03:00.0          a PCI port, the address with its domain
 *   vdev net_tap0,iface=sl0   a virtual device, as written
 *
 * Only the configuration is read (no certificates): the machine is set
 * up before the appliance's certificate exists.
 */
#include <stdio.h>

#include "config.h"
#include "ports.h"

/* "03:00.0" or "0000:03:00.0" with its domain, as sysfs names it. */
static void print_pci(const char *s)
{
	unsigned d = 0, b, dev, f;

	if (sscanf(s, "%x:%x:%x.%x", &d, &b, &dev, &f) == 4 ||
	    (d = 0, sscanf(s, "%x:%x.%x", &b, &dev, &f) == 3))
		printf("pci %04x:%02x:%02x.%x\n", d, b, dev, f);
	else
		printf("pci %s\n", s);   /* the loader took it as PCI: never here */
}

int ports_main(const char *path)
{
	char err[1024] = "";
	struct cfg *c;
	int rc;

	rc = path ? cfg_load_file(path, &c, err, sizeof(err))
		  : cfg_load_string(cfg_default_yaml, cfg_default_yaml_len,
				    "(embedded default)", &c, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "sluice: %s\n", err);
		return 1;
	}
	if (!c->native) {
		printf("stack kernel\n");
	} else {
		const struct cfg_native *n = c->native;

		printf("stack native\nhugepages %s\nmemory_mb %u\n",
		       n->eal.hugepages ? "yes" : "no", n->eal.memory_mb);
		for (unsigned i = 0; i < n->n_ports; i++) {
			if (n->ports[i].pci)
				print_pci(n->ports[i].name);
			else
				printf("vdev %s\n", n->ports[i].device);
		}
	}
	cfg_free(c);
	return 0;
}
