/* localsock — Unix-domain stream sockets by path (see localsock.h). */
#include "common/localsock.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int localsock_addr(const char *path, struct sockaddr_un *a)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof a->sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(a->sun_path, path, strlen(path) + 1);
	return 0;
}

int localsock_listen(const char *path)
{
	struct sockaddr_un a;
	if (localsock_addr(path, &a) != 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	unlink(path);
	mode_t old = umask(0177);
	int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 4) == 0;
	umask(old);
	if (!ok) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int localsock_accept(int lfd)
{
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
}

int localsock_connect(const char *path)
{
	struct sockaddr_un a;
	if (localsock_addr(path, &a) != 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}
