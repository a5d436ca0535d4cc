/*
 * sluice-control's pure parts: policy stage's edit of a listener's policy:
 * line (every other byte kept, a listener without one refused), the admin
 * socket's line reader (bad JSON, not an object, too long, split reads),
 * and the atomic write-back of committed files (mode kept, no .tmp left).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "control/jline.h"
#include "control/policy_edit.h"
#include "control/writeback.h"

static const char yaml[] =
	"hostname: mail.test\n"                    /* 1 */
	"listeners:\n"                             /* 2 */
	"  - name: smtp          # port 25\n"      /* 3 */
	"    address: 127.0.0.1:25\n"              /* 4 */
	"    # policy: legacy (commented out)\n"   /* 5 */
	"    policy_by_network:\n"                 /* 6 */
	"      - networks: [10.0.0.0/8]\n"         /* 7 */
	"        policy: legacy\n"                 /* 8 */
	"  - name: submissions\n"                  /* 9 */
	"    address: 127.0.0.1:465\n"             /* 10 */
	"\n"                                       /* 11 */
	"    policy: intermediate   # reviewed\n"  /* 12 */
	"    tls: implicit\n"                      /* 13 */
	"- name: flow\n"                           /* 14 */
	"  policy:   legacy\n";                    /* 15 */

/* Each case: the listener's first line, the policy, the line edited (0:
 * refused) and the text expected there. */
static const struct {
	unsigned line;
	const char *listener, *policy;
	unsigned at;
	const char *expect;
} edits[] = {
	{ 9, "submissions", "modern", 12, "    policy: modern   # reviewed\n" },
	{ 15 - 1, "flow", "modern", 15, "  policy:   modern\n" },
	/* Only policy_by_network's (deeper) and a comment: no line of its own. */
	{ 3, "smtp", "modern", 0, NULL },
	{ 99, "ghost", "modern", 0, NULL },
};

static void test_policy_edit(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		char err[512] = "", *out = NULL;
		size_t len = 0;
		unsigned at = 0;
		int rc = policy_edit(yaml, strlen(yaml), edits[i].line, edits[i].listener,
				     edits[i].policy, &out, &len, &at, err, sizeof(err));

		if (!edits[i].at) {
			assert_true(rc < 0);
			assert_non_null(strstr(err, edits[i].listener));
			assert_null(out);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(at, edits[i].at);
		assert_int_equal(len, strlen(out));
		/* The edited line is as expected, and nothing else moved. */
		{
			const char *p = out;

			for (unsigned n = 1; n < at; n++)
				p = strchr(p, '\n') + 1;
			assert_memory_equal(p, edits[i].expect, strlen(edits[i].expect));
			assert_memory_equal(out, yaml, (size_t)(p - out));
		}
		{
			/* Put the old word back: the original text. */
			char *again = NULL;
			size_t l2;
			unsigned at2;
			const char *old = i == 0 ? "intermediate" : "legacy";

			assert_int_equal(policy_edit(out, len, edits[i].line, edits[i].listener, old,
						     &again, &l2, &at2, err, sizeof(err)), 0);
			assert_string_equal(again, yaml);
			free(again);
		}
		free(out);
	}
}

static void test_policy_edit_refusal_says_what_to_do(void **state)
{
	char err[512], *out = NULL;
	size_t len;
	unsigned at;

	(void)state;
	assert_int_equal(policy_edit(yaml, strlen(yaml), 3, "smtp", "modern", &out, &len, &at, err,
				     sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "listener smtp (line 3) has no policy: line of its own; add "
				    "\"policy: modern\""));
}

/* A jline over one end of a socket pair; the other end in *peer. */
static void pair(struct jline *j, int *peer)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	jline_init(j, sv[0]);
	*peer = sv[1];
}

static void test_jline_lines(void **state)
{
	static const char in[] = "{\"cmd\":\"status\"}\nnot json\n[1,2]\n{\"cmd\":\"st";
	struct jline j;
	char err[256];
	json_t *v;
	int peer;

	(void)state;
	pair(&j, &peer);
	assert_int_equal(write(peer, in, sizeof(in) - 1), (ssize_t)sizeof(in) - 1);
	assert_true(jline_read(&j) > 0);
	assert_int_equal(jline_next(&j, &v, err, sizeof(err)), 1);
	assert_string_equal(json_string_value(json_object_get(v, "cmd")), "status");
	json_decref(v);
	assert_int_equal(jline_next(&j, &v, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not JSON"));
	assert_int_equal(jline_next(&j, &v, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "not a JSON object");
	/* Half a line: nothing yet; the rest comes. */
	assert_int_equal(jline_next(&j, &v, err, sizeof(err)), 0);
	assert_int_equal(write(peer, "ats\"}\n", 6), 6);
	assert_true(jline_read(&j) > 0);
	assert_int_equal(jline_next(&j, &v, err, sizeof(err)), 1);
	assert_string_equal(json_string_value(json_object_get(v, "cmd")), "stats");
	json_decref(v);
	/* The peer goes: end of file. */
	close(peer);
	assert_int_equal(jline_read(&j), -EPIPE);
	assert_true(j.eof);
	jline_close(&j);
}

static void test_jline_too_long(void **state)
{
	struct jline j;
	char err[256], *chunk = malloc(1 << 20);
	json_t *v;
	size_t sent = 0;
	int peer, rc = 0;

	(void)state;
	memset(chunk, 'x', 1 << 20);
	pair(&j, &peer);
	/* 17 MiB without a newline: refused once, then the next line works. */
	while (sent < JLINE_MAX + (1u << 20)) {
		ssize_t w = write(peer, chunk, 1 << 20);

		if (w > 0)
			sent += (size_t)w;
		assert_true(jline_read(&j) >= 0);
		rc = jline_next(&j, &v, err, sizeof(err));
		if (rc)
			break;
	}
	assert_int_equal(rc, -EINVAL);
	assert_non_null(strstr(err, "longer than"));
	assert_true(j.in_len <= JLINE_MAX + 1);
	while (write(peer, "xx\n{\"cmd\":\"ok\"}\n", 16) < 0)
		assert_true(jline_read(&j) >= 0 && jline_next(&j, &v, err, sizeof(err)) == 0);
	for (int k = 0; k < 100 && (rc = jline_next(&j, &v, err, sizeof(err))) == 0; k++)
		assert_true(jline_read(&j) >= 0);
	assert_int_equal(rc, 1);
	assert_string_equal(json_string_value(json_object_get(v, "cmd")), "ok");
	json_decref(v);
	free(chunk);
	close(peer);
	jline_close(&j);
}

static void test_jline_queue_bound(void **state)
{
	struct jline j;
	json_t *v = json_pack("{s:s}", "cmd", "status");
	int peer;

	(void)state;
	pair(&j, &peer);
	/* 17 bytes a line: two fit in 40, a third does not. */
	assert_int_equal(jline_queue(&j, v, 40), 0);
	assert_int_equal(jline_queue(&j, v, 40), 0);
	assert_int_equal(jline_queue(&j, v, 40), -ENOBUFS);
	assert_int_equal(jline_flush(&j), 1);
	{
		char buf[128];
		ssize_t r = read(peer, buf, sizeof(buf));

		assert_int_equal(r, 34);
		assert_memory_equal(buf, "{\"cmd\":\"status\"}\n{\"cmd\":\"status\"}\n", 34);
	}
	json_decref(v);
	close(peer);
	jline_close(&j);
}

static void test_writeback(void **state)
{
	char dir[] = "/tmp/sluice-wb-XXXXXX", path[64], tmp[80], err[256], buf[64];
	struct stat st;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/key.pem", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(path, O_WRONLY | O_CREAT, 0640);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "old", 3), 3);
	close(fd);
	/* A .tmp left by a crash (here a symlink elsewhere) is not written through. */
	assert_int_equal(symlink("/nonexistent/elsewhere", tmp), 0);
	assert_int_equal(writeback_file(path, "new contents", 12, 0640, getuid(), getgid(), err,
					sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_size, 12);
	fd = open(path, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf)), 12);
	assert_memory_equal(buf, "new contents", 12);
	close(fd);
	assert_int_equal(lstat(tmp, &st), -1);
	/* A folder that does not exist: an error naming the path, nothing made. */
	assert_true(writeback_file("/nonexistent/dir/x.pem", "x", 1, 0600, 0, 0, err,
				   sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent/dir/x.pem: cannot create"));
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_edit),
		cmocka_unit_test(test_policy_edit_refusal_says_what_to_do),
		cmocka_unit_test(test_jline_lines),
		cmocka_unit_test(test_jline_too_long),
		cmocka_unit_test(test_jline_queue_bound),
		cmocka_unit_test(test_writeback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
