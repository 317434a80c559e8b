/* log — JSON-lines logger shared by every program (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static const char *log_component = "meshbroker";
static enum log_level log_min = LOG_INFO_;
static int log_journal = -1; /* stderr is the journal's stream: -1 not known yet */

/* systemd.exec(5) JOURNAL_STREAM: "<device>:<inode>" of the stream it
 * connected stderr to; a match means journald reads our lines, and then
 * each starts with its syslog priority (sd-daemon.h's "<3>" style, which
 * journald strips and keeps as PRIORITY=, so `journalctl -p err` works) */
static int stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	char end;
	struct stat st;
	if (!js || sscanf(js, "%llu:%llu%c", &dev, &ino, &end) != 2 || fstat(2, &st) != 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

struct line {
	char buf[4096];
	size_t n; /* bytes used; stops growing at the cap (the line is cut) */
};

static void put_raw(struct line *l, const char *s)
{
	for (; *s && l->n < sizeof l->buf - 2; s++)
		l->buf[l->n++] = *s;
}

static void put_str(struct line *l, const char *s)
{
	put_raw(l, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[8] = {(char)*p, 0};
		switch (*p) {
		case '"': strcpy(esc, "\\\""); break;
		case '\\': strcpy(esc, "\\\\"); break;
		case '\n': strcpy(esc, "\\n"); break;
		case '\r': strcpy(esc, "\\r"); break;
		case '\t': strcpy(esc, "\\t"); break;
		default:
			if (*p < 0x20)
				snprintf(esc, sizeof esc, "\\u%04x", *p);
		}
		put_raw(l, esc);
	}
	put_raw(l, "\"");
}

static void put_kv(struct line *l, const char *k, const char *v)
{
	put_raw(l, ",");
	put_str(l, k);
	put_raw(l, ":");
	put_str(l, v ? v : "");
}

void log_init(const char *component)
{
	log_component = component;
	log_journal = stderr_is_journal();
	const char *lv = getenv("LOG_LEVEL");
	if (lv && strcmp(lv, "debug") == 0)
		log_min = LOG_DEBUG_;
	else if (lv && strcmp(lv, "warn") == 0)
		log_min = LOG_WARN_;
}

void log_set_level(enum log_level min) { log_min = min; }

void log_msg(enum log_level lvl, const char *func, const char *msg, ...)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	static const char *prio[] = {"<7>", "<6>", "<4>", "<3>"}; /* SD_DEBUG SD_INFO SD_WARNING SD_ERR */
	if (lvl < log_min)
		return;
	if (log_journal < 0)
		log_journal = stderr_is_journal();
	struct line l = {.n = 0};
	if (log_journal)
		put_raw(&l, prio[lvl]);
	char ts[32];
	iso8601_ms(now_ms(), ts);
	put_raw(&l, "{\"ts\":");
	put_str(&l, ts);
	put_kv(&l, "level", names[lvl]);
	put_kv(&l, "component", log_component);
	put_kv(&l, "func", func);
	put_kv(&l, "msg", msg);
	va_list ap;
	va_start(ap, msg);
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (!k)
			break;
		put_kv(&l, k, va_arg(ap, const char *));
	}
	va_end(ap);
	l.buf[l.n++] = '}';
	l.buf[l.n++] = '\n';
	ssize_t w = write(2, l.buf, l.n);
	(void)w;
}
