/* groupcheck — the pure checks of the requests of docs/protocol.md §12.3-
 * §12.5 (groups, visibility, profile, stats, moderation, API keys over the
 * socket): field types, the name and length rules of §12.3's fix, and the
 * ISO time of apikey_create.  No socket, no database, no clock (the caller
 * passes now); fuzz/fuzz_groupcheck.c runs every one on any input.  Strings
 * handed back point into msg. */
#ifndef WORKER_GROUPCHECK_H
#define WORKER_GROUPCHECK_H

#include <cjson/cJSON.h>
#include <stdint.h>

#define GROUP_NAME_MAX       128
#define GROUP_SEGMENT_MAX    64
#define GROUP_ROLE_MAX       32
#define GROUPS_MAX           32
#define PROFILE_AVATAR_MAX   256
#define PROFILE_TITLE_MAX    64
#define PROFILE_BIO_MAX      512
#define PROFILE_CAPS_MAX     16
#define PROFILE_CAP_LEN_MAX  64
#define MOD_TARGET_MAX       128
#define APIKEY_LABEL_MAX     128
#define APIKEY_SCOPES_MAX    64
#define APIKEY_ID_PREFIX_MIN 6

/* 1 when s is a group name: 1-128 bytes of '/'-separated segments
 * [A-Za-z0-9][A-Za-z0-9_.-]{0,63}, and not "all" */
int groupcheck_name(const char *s);
/* 1 when t (after the '@' of a targetSpec) is "all" or a group name */
int groupcheck_target(const char *t);
/* 1 when v is a hello's groups: an array of <= 32 {name, role?} */
int groupcheck_list(const cJSON *v);

/* join_group{name, role?} / leave_group{name}: 0 ok, -1 invalid_group */
int groupcheck_join(const cJSON *msg, const char **name, const char **role);
int groupcheck_leave(const cJSON *msg, const char **name);
/* set_visible{visible: bool}: 0 ok, -1 malformed */
int groupcheck_visible(const cJSON *msg, int *visible);
/* set_profile: *patch = an object of the present fields (caller deletes);
 * 0 ok, -1 profile_too_long (a field too long), -2 malformed (a wrong type) */
int groupcheck_profile(const cJSON *msg, cJSON **patch);
/* set_stats{stats:{messagesIn?, messagesOut?, toolCalls?, uptime?,
 * errors?}}: *stats = those of them that are finite numbers; 0 ok, -1
 * malformed */
int groupcheck_stats(const cJSON *msg, cJSON **stats);

/* kick / disconnect: which presences */
enum mod_pick { MOD_TARGET, MOD_STALE, MOD_ALL };
struct mod_args {
	enum mod_pick pick;
	const char *target; /* MOD_TARGET, and ban/unban */
	int64_t stale_ms;   /* MOD_STALE */
};
/* kick/disconnect{target? | stale?: ms | all?: true}; ban/unban{target}
 * (target_only): 0 ok, -1 "target required" */
int groupcheck_moderation(const cJSON *msg, int target_only, struct mod_args *a);

/* apikey_create{label, capabilities, topicScopes?, expiresAt?} */
struct apikey_args {
	const char *label;
	unsigned caps; /* proto/apikey.h bits */
	const char *scopes[APIKEY_SCOPES_MAX];
	int n_scopes;       /* -1: no topicScopes (every topic) */
	int64_t expires_ms; /* 0: never */
};
/* 0 ok, else -1 with *why the invalid_args message */
int groupcheck_apikey_create(const cJSON *msg, int64_t now, struct apikey_args *a, const char **why);
/* "YYYY-MM-DDTHH:MM:SS[.fff]Z" as ms since the epoch; -1 when it is not */
int64_t groupcheck_iso_ms(const char *s);

#endif
