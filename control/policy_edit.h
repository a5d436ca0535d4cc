/* policy stage: a listener's `policy:` line edited in the configuration's
 * text, every other byte (comments, order, layout) kept. */
#ifndef SLUICE_CTL_POLICY_EDIT_H
#define SLUICE_CTL_POLICY_EDIT_H

#include <stddef.h>

/*
 * In yaml, the listener whose mapping starts on line (1-based, its first
 * key, as struct cfg_listener.line says) gets `policy: policy`. Only an
 * existing `policy:` key of that listener, in block style, is edited: a
 * listener without one (it runs on the default) is refused, naming the
 * line to add, rather than a line being invented. On success *out is a
 * malloc'd new text (*outlen bytes) and *at the edited line; else <0 and
 * the reason in err.
 */
int policy_edit(const char *yaml, size_t len, unsigned line, const char *listener,
		const char *policy, char **out, size_t *outlen, unsigned *at, char *err,
		size_t errlen);

#endif
