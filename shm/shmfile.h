/* shmfile — a small fixed-size shared-memory file beside the presence table
 * (the child table of shm/childtab.h, the negative member cache of
 * shm/negcache.h): created complete in a temp file and published atomically,
 * checked by magic, version and size when mapped.  No pointers inside. */
#ifndef SHM_SHMFILE_H
#define SHM_SHMFILE_H

#include <stddef.h>
#include <stdint.h>

/* Every such file begins with this. */
struct shmfile_header {
	uint64_t magic;
	uint32_t version;
	uint32_t pad;
	uint64_t size; /* of the whole file */
};

enum shmfile_mode {
	SHMFILE_OPEN,    /* map the existing file; -1 (err set) when there is none or it does not match */
	SHMFILE_CREATE,  /* map the existing file, or create it when missing (link(): one racer wins);
			  * one that does not match is replaced (rename()): its content is soft state */
	SHMFILE_REPLACE, /* always publish a fresh file (rename()); mappings of the old one stay valid */
};

/* Map <dir>/<name> (dir must exist) of `size` bytes.  init(map, arg) fills a
 * fresh file (zeroed, header already stamped) before it is published.  The
 * mapping, or NULL with a one-line message in err. */
void *shmfile_map(const char *dir, const char *name, size_t size, uint64_t magic, uint32_t version,
		  enum shmfile_mode mode, void (*init)(void *map, void *arg), void *arg, char *err,
		  size_t errlen);
void shmfile_unmap(void *map, size_t size);

#endif
