/* The files a configuration names, in memory (files.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


#include "files.h"

#define FILE_MAX (1u << 24) /* no PEM or key file is 16 MiB */

/* The whole file at path, NUL-terminated; 0 or -errno. */
static int read_disk(const char *path, char **out, size_t *len, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *p = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st->st_mode)) {
		rc = S_ISDIR(st->st_mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	for (;;) {
		ssize_t r;

		if (cap - n < 4096) {
			char *q;

			if (cap >= FILE_MAX) {
				rc = -EFBIG;
				goto out;
			}
			/* Not realloc: it would free the old block with a
			 * key in it, unwiped. */
			if (!(q = malloc(cap ? cap * 2 : 8192))) {
				rc = -ENOMEM;
				goto out;
			}
			if (p) {
				memcpy(q, p, n);
				explicit_bzero(p, cap);
				free(p);
			}
			p = q;
			cap = cap ? cap * 2 : 8192;
		}
		r = read(fd, p + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	p[n] = 0;
	*out = p;
	p = NULL;
	if (len)
		*len = n;
out:
	if (p) {
		explicit_bzero(p, cap);
		free(p);
	}
	close(fd);
	return rc;
}

const struct cfg_file *cfg_files_find(const struct cfg_files *b, const char *path)
{
	for (unsigned i = 0; b && i < b->n; i++)
		if (!strcmp(b->f[i].path, path))
			return &b->f[i];
	return NULL;
}

int cfg_file_read(const struct cfg_files *b, const char *path, char **out, size_t *len)
{
	const struct cfg_file *f;
	struct stat st;

	if (!b)
		return read_disk(path, out, len, &st);
	if (!(f = cfg_files_find(b, path)))
		return -ENOENT;
	if (!(*out = malloc(f->len + 1)))
		return -ENOMEM;
	memcpy(*out, f->data, f->len);
	(*out)[f->len] = 0;
	if (len)
		*len = f->len;
	return 0;
}

static struct cfg_file *files_new(struct cfg_files *b, const char *path)
{
	struct cfg_file *v = realloc(b->f, (b->n + 1) * sizeof(*v));

	if (!v)
		return NULL;
	b->f = v;
	memset(&v[b->n], 0, sizeof(v[b->n]));
	if (!(v[b->n].path = strdup(path)))
		return NULL;
	return &v[b->n++];
}

int cfg_files_add(struct cfg_files *b, const char *path)
{
	struct cfg_file *f;
	struct stat st;
	char *data;
	size_t len;
	int rc;

	if (cfg_files_find(b, path))
		return 0;
	if ((rc = read_disk(path, &data, &len, &st)) < 0)
		return rc;
	if (!(f = files_new(b, path))) {
		explicit_bzero(data, len);
		free(data);
		return -ENOMEM;
	}
	f->data = data;
	f->len = len;
	f->mode = st.st_mode & 07777;
	f->uid = st.st_uid;
	f->gid = st.st_gid;
	return 0;
}

int cfg_files_put(struct cfg_files *b, const char *path, const char *data, size_t len,
		  unsigned mode)
{
	struct cfg_file *f = (struct cfg_file *)cfg_files_find(b, path);
	char *copy = malloc(len + 1);

	if (!copy)
		return -ENOMEM;
	memcpy(copy, data, len);
	copy[len] = 0;
	if (!f && !(f = files_new(b, path))) {
		explicit_bzero(copy, len);
		free(copy);
		return -ENOMEM;
	}
	if (f->data) {
		explicit_bzero(f->data, f->len);
		free(f->data);
	}
	f->data = copy;
	f->len = len;
	f->mode = mode;
	return 0;
}

void cfg_files_clear(struct cfg_files *b)
{
	for (unsigned i = 0; i < b->n; i++) {
		if (b->f[i].data) {
			explicit_bzero(b->f[i].data, b->f[i].len);
			free(b->f[i].data);
		}
		free(b->f[i].path);
	}
	free(b->f);
	b->f = NULL;
	b->n = 0;
}
