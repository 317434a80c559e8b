/* sig — the worker's signal handling: SIGTERM/SIGINT only set a flag that
 * the event loop turns into a clean close (1001 "shutdown"). */
#include <signal.h>

#include "worker/worker.h"

static volatile sig_atomic_t got_term;

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
}

int worker_terminating(void) { return got_term; }
