/* sig — the worker's signal handling: SIGTERM/SIGINT only set a flag that
 * the event loop turns into a clean close (1001 "shutdown").  They stay
 * blocked except inside the loop's ppoll(), so one can never slip in between
 * the flag check and the wait. */
#include <signal.h>
#include <stddef.h>

#include "worker/worker.h"

static volatile sig_atomic_t got_term;
static sigset_t open_mask; /* the mask ppoll() waits with: SIGTERM/SIGINT let in */

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

void worker_signals_init(void)
{
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_term};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &open_mask);
	sigdelset(&open_mask, SIGTERM);
	sigdelset(&open_mask, SIGINT);
}

const sigset_t *worker_wait_mask(void) { return &open_mask; }

int worker_terminating(void) { return got_term; }
