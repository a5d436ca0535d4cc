/*
 * explain against the running configuration: what `sluice explain` says
 * for a ClientHello (hex, as Wireshark copies it), with the cert sets and
 * policies of sluice-control's last good configuration, so an operator asks
 * the box rather than a file that may have changed since.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certsel.h"
#include "ctl.h"
#include "explain_input.h"
#include "hello.h"
#include "tls.h"

#define EXPLAIN_TEXT_MAX 65536

json_t *adm_explain(struct ctl *ctl, struct adm_client *c, json_t *req)
{
	const char *hex = json_string_value(json_object_get(req, "hex"));
	const char *ln = json_string_value(json_object_get(req, "listener"));
	const char *from = json_string_value(json_object_get(req, "from"));
	const struct tls_conf *tc = &ctl->cur.tc;
	struct tls_certset *setp[16];
	struct sockaddr_storage ss = { 0 };
	struct certsel_verdict v;
	const struct cfg_listener *l = NULL;
	unsigned li = 0, n, si;
	enum cfg_policy pol;
	char note[512] = "", *text;
	struct hello h;
	json_t *a;

	if (!hex)
		return jline_error("explain needs \"hex\": the ClientHello as hex");
	if (explain_hex(hex, &h, note, sizeof(note)) < 0)
		return jline_error("%s", note);
	for (unsigned i = 0; i < tc->c->n_listeners && !l; i++)
		if (ln ? !strcmp(tc->c->listeners[i].name, ln) : tc->l[i].n_sets > 0) {
			l = &tc->c->listeners[i];
			li = i;
		}
	if (!l || !tc->l[li].n_sets)
		return jline_error("%s", ln ? "no listener of that name with TLS" : "no listener with TLS");
	if (from) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		if (inet_pton(AF_INET, from, &s4->sin_addr) == 1)
			ss.ss_family = AF_INET;
		else if (inet_pton(AF_INET6, from, &s6->sin6_addr) == 1)
			ss.ss_family = AF_INET6;
		else
			return jline_error("from: '%s' is not an IP address", from);
	}
	pol = cfg_policy_for(l, (const struct sockaddr *)&ss);
	n = tc->l[li].n_sets < 16 ? tc->l[li].n_sets : 16;
	for (unsigned k = 0; k < n; k++)
		setp[k] = tls_conf_set(tc, li, k);
	si = tls_certset_for_sni(setp, n, &h);
	certsel_choose(&h, setp[si]->sel, setp[si]->n, tls_policy(pol), (int64_t)time(NULL), &v);
	if (!(text = malloc(EXPLAIN_TEXT_MAX)))
		return jline_error("out of memory");
	certsel_explain(&h, setp[si]->sel, setp[si]->n, tls_policy(pol), &v, text,
			EXPLAIN_TEXT_MAX);
	a = json_pack("{s:b,s:s,s:s,s:o,s:o,s:b,s:o}", "ok", 1, "listener", l->name,
		      "policy", cfg_policy_name(pol), "set", jline_str(setp[si]->name),
		      "note", note[0] ? jline_str(note) : json_null(), "succeeds", v.chosen >= 0,
		      "text", jline_str(text));
	free(text);
	return a ? a : jline_error("out of memory");
}
