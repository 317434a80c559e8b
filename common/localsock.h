/* localsock — Unix-domain stream sockets by path, for rendezvous between
 * processes of one user on one machine (meshctl mcp and meshctl hook prompt,
 * cli/hookbox.h).  Not a network client: meshctl's connections to brokers
 * are libcurl's.  Close-on-exec; the caller owns the directory's safety. */
#ifndef COMMON_LOCALSOCK_H
#define COMMON_LOCALSOCK_H

/* A non-blocking listening socket at path (a stale socket file there is
 * replaced), mode 0600.  The fd, or -1 with errno set. */
int localsock_listen(const char *path);
/* A waiting client of lfd, non-blocking; -1 when none. */
int localsock_accept(int lfd);
/* A blocking connection to path; -1 with errno set. */
int localsock_connect(const char *path);

#endif
