/* log — one JSON object per line on stderr: ts, level, component, func, msg,
 * then context keys.  When stderr is the journal (JOURNAL_STREAM matches it)
 * each line starts with its syslog priority, <7> debug, <6> info, <4> warn,
 * <3> error, so that `journalctl -p err` selects; plain otherwise.  Never
 * pass message bodies, nonces, ciphertexts or keys. */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <unistd.h>

enum log_level { LOG_DEBUG_, LOG_INFO_, LOG_WARN_, LOG_ERROR_ };

void log_init(const char *component);
void log_set_level(enum log_level min);
/* kv: alternating key, value C strings, ended by NULL */
void log_msg(enum log_level lvl, const char *func, const char *msg, ...);

#define log_debug(msg, ...) log_msg(LOG_DEBUG_, __func__, msg, ##__VA_ARGS__, (char *)0)
#define log_info(msg, ...) log_msg(LOG_INFO_, __func__, msg, ##__VA_ARGS__, (char *)0)
#define log_warn(msg, ...) log_msg(LOG_WARN_, __func__, msg, ##__VA_ARGS__, (char *)0)
#define log_error(msg, ...) log_msg(LOG_ERROR_, __func__, msg, ##__VA_ARGS__, (char *)0)
/* the environment failed: log and exit 111 */
#define log_fatal(msg, ...)                                                   \
	do {                                                                  \
		log_msg(LOG_ERROR_, __func__, msg, ##__VA_ARGS__, (char *)0); \
		_exit(111);                                                   \
	} while (0)

#endif
