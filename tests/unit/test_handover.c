/* test_handover — common/handover.c, the acceptor's hand-over of a
 * connection to a spare worker (issue 23): an fd and its peer address go
 * across a SOCK_SEQPACKET socketpair whole, anything else is refused with
 * every fd it carried closed, and the end of either side is seen. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/handover.h"

static void pair(int sv[2]) { ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0); }

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(d);
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static struct handover sample(void)
{
	struct handover h;
	memset(&h, 0, sizeof h);
	h.magic = HANDOVER_MAGIC;
	h.slot = 1234;
	h.port = 54321;
	snprintf(h.addr, sizeof h.addr, "2001:db8::1");
	return h;
}

/* a raw message with nfds copies of fd (0: none) and len bytes of h */
static void send_raw(int sock, const void *data, size_t len, int fd, int nfds)
{
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds) {
		m.msg_control = ctl.buf;
		m.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		for (int i = 0; i < nfds; i++)
			memcpy(CMSG_DATA(c) + (size_t)i * sizeof(int), &fd, sizeof fd);
	}
	ck_assert_int_eq((int)sendmsg(sock, &m, MSG_NOSIGNAL), (int)len);
}

START_TEST(fd_and_address_arrive)
{
	int sv[2], p[2];
	pair(sv);
	ck_assert_int_eq(pipe(p), 0);
	struct handover h = sample(), got;
	ck_assert_int_eq(handover_send(sv[0], p[1], &h), 0);
	int fd = -1;
	ck_assert_int_eq(handover_recv(sv[1], 0, &got, &fd), 1);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_ne(fd, p[1]);
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	ck_assert_uint_eq(got.slot, 1234);
	ck_assert_int_eq(got.port, 54321);
	ck_assert_str_eq(got.addr, "2001:db8::1");
	/* the same open file: what is written through it comes out of the pipe */
	close(p[1]);
	ck_assert_int_eq((int)write(fd, "x", 1), 1);
	char c = 0;
	ck_assert_int_eq((int)read(p[0], &c, 1), 1);
	ck_assert_int_eq(c, 'x');
	close(fd);
	close(p[0]);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(nothing_yet_is_eagain_and_a_closed_acceptor_is_end_of_file)
{
	int sv[2];
	pair(sv);
	struct handover got;
	int fd = 7;
	ck_assert_int_eq(handover_recv(sv[1], MSG_DONTWAIT, &got, &fd), -EAGAIN);
	ck_assert_int_eq(fd, -1);
	close(sv[0]);
	ck_assert_int_eq(handover_recv(sv[1], MSG_DONTWAIT, &got, &fd), 0);
	close(sv[1]);
}
END_TEST

START_TEST(a_gone_spare_is_epipe_not_sigpipe)
{
	int sv[2], p[2];
	pair(sv);
	ck_assert_int_eq(pipe(p), 0);
	close(sv[1]);
	struct handover h = sample();
	int r = handover_send(sv[0], p[0], &h);
	ck_assert(r == -EPIPE || r == -ECONNRESET);
	close(sv[0]);
	close(p[0]);
	close(p[1]);
}
END_TEST

START_TEST(malformed_messages_are_refused_and_their_fds_closed)
{
	int sv[2], p[2];
	pair(sv);
	ck_assert_int_eq(pipe(p), 0);
	struct handover h = sample(), got;
	int before = open_fds(), fd;

	send_raw(sv[0], &h, sizeof h, -1, 0); /* no fd */
	ck_assert_int_eq(handover_recv(sv[1], 0, &got, &fd), -EPROTO);
	ck_assert_int_eq(fd, -1);

	send_raw(sv[0], &h, sizeof h, p[0], 2); /* two fds */
	ck_assert_int_eq(handover_recv(sv[1], 0, &got, &fd), -EPROTO);

	send_raw(sv[0], &h, sizeof h - 1, p[0], 1); /* short */
	ck_assert_int_eq(handover_recv(sv[1], 0, &got, &fd), -EPROTO);

	struct handover bad = h;
	bad.magic ^= 1;
	send_raw(sv[0], &bad, sizeof bad, p[0], 1);
	ck_assert_int_eq(handover_recv(sv[1], 0, &got, &fd), -EPROTO);

	bad = h;
	memset(bad.addr, 'a', sizeof bad.addr); /* no NUL */
	send_raw(sv[0], &bad, sizeof bad, p[0], 1);
	ck_assert_int_eq(handover_recv(sv[1], 0, &got, &fd), -EPROTO);

	bad = h;
	bad.port = 70000;
	send_raw(sv[0], &bad, sizeof bad, p[0], 1);
	ck_assert_int_eq(handover_recv(sv[1], 0, &got, &fd), -EPROTO);

	char big[sizeof h + 8];
	memset(big, 0, sizeof big);
	memcpy(big, &h, sizeof h);
	send_raw(sv[0], big, sizeof big, p[0], 1); /* too long: truncated */
	ck_assert_int_eq(handover_recv(sv[1], 0, &got, &fd), -EPROTO);

	/* every fd those messages carried was closed by the receiver */
	ck_assert_int_eq(open_fds(), before);
	/* and a good one still goes through after them */
	ck_assert_int_eq(handover_send(sv[0], p[1], &h), 0);
	ck_assert_int_eq(handover_recv(sv[1], 0, &got, &fd), 1);
	close(fd);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("handover");
	TCase *tc = tcase_create("handover");
	tcase_add_test(tc, fd_and_address_arrive);
	tcase_add_test(tc, nothing_yet_is_eagain_and_a_closed_acceptor_is_end_of_file);
	tcase_add_test(tc, a_gone_spare_is_epipe_not_sigpipe);
	tcase_add_test(tc, malformed_messages_are_refused_and_their_fds_closed);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
