/* shmfile — create-or-map of a small fixed-size shared file (see shmfile.h):
 * the same publish rules as the presence table (table.c), for tables that live
 * in files of their own. */
#include "shm/shmfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* 1 mapped, 0 no file, -2 a file that does not match, -1 error */
static int shmfile_try(const char *path, size_t size, uint64_t magic, uint32_t version, void **out,
		       char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	struct shmfile_header h;
	int rc = -2;
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		rc = -1;
	} else if ((size_t)st.st_size != size || pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h ||
		   h.magic != magic || h.version != version || h.size != size) {
		snprintf(err, errlen, "%s: not this build's table (size %lld, want %zu)", path,
			 (long long)st.st_size, size);
	} else {
		void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED) {
			snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
			rc = -1;
		} else {
			*out = map;
			rc = 1;
		}
	}
	close(fd);
	return rc;
}

/* a complete file in a temp name, then link() (create) or rename() (replace) */
static int shmfile_publish(const char *dir, const char *name, const char *path, size_t size,
			   uint64_t magic, uint32_t version, int replace,
			   void (*init)(void *map, void *arg), void *arg, char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", dir, name) >= (int)sizeof tmp) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot create a temp file: %s", dir, strerror(errno));
		return -1;
	}
	void *map = MAP_FAILED;
	if (fchmod(fd, 0600) != 0 || ftruncate(fd, (off_t)size) != 0 ||
	    (map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	struct shmfile_header *h = map;
	h->magic = magic;
	h->version = version;
	h->size = size;
	if (init)
		init(map, arg);
	munmap(map, size);
	int rc = replace ? rename(tmp, path) : link(tmp, path);
	if (rc != 0 && (replace || errno != EEXIST)) {
		snprintf(err, errlen, "%s: cannot publish: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if (!replace)
		unlink(tmp);
	return 0;
}

void *shmfile_map(const char *dir, const char *name, size_t size, uint64_t magic, uint32_t version,
		  enum shmfile_mode mode, void (*init)(void *map, void *arg), void *arg, char *err,
		  size_t errlen)
{
	char path[PATH_MAX];
	if (errlen)
		err[0] = 0;
	if (size < sizeof(struct shmfile_header)) {
		snprintf(err, errlen, "%s: table too small", name);
		return NULL;
	}
	if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
		snprintf(err, errlen, "%s: path too long", dir);
		return NULL;
	}
	if (mode == SHMFILE_REPLACE &&
	    shmfile_publish(dir, name, path, size, magic, version, 1, init, arg, err, errlen) != 0)
		return NULL;
	for (int attempt = 0; attempt < 4; attempt++) {
		void *map = NULL;
		int rc = shmfile_try(path, size, magic, version, &map, err, errlen);
		if (rc == 1)
			return map;
		if (rc == 0 && mode != SHMFILE_CREATE)
			snprintf(err, errlen, "%s: no such table", path);
		if (rc == -1 || mode != SHMFILE_CREATE)
			return NULL;
		if (shmfile_publish(dir, name, path, size, magic, version, rc == -2, init, arg, err,
				    errlen) != 0)
			return NULL;
	}
	snprintf(err, errlen, "%s: keeps changing under us", path);
	return NULL;
}

void shmfile_unmap(void *map, size_t size)
{
	if (map)
		munmap(map, size);
}
