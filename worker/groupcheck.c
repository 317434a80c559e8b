/* groupcheck — see groupcheck.h.  Every limit is a byte count on UTF-8 as
 * it arrived; nothing here allocates except the objects handed back. */
#include "worker/groupcheck.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "proto/apikey.h"

static int seg_char(char c, int first)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		return 1;
	return !first && (c == '_' || c == '.' || c == '-');
}

int groupcheck_name(const char *s)
{
	if (!s)
		return 0;
	size_t len = strlen(s);
	if (len < 1 || len > GROUP_NAME_MAX || strcmp(s, "all") == 0)
		return 0;
	size_t seg = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '/') {
			if (seg == 0)
				return 0; /* empty segment: leading, trailing or double '/' */
			seg = 0;
			continue;
		}
		if (!seg_char(s[i], seg == 0) || ++seg > GROUP_SEGMENT_MAX)
			return 0;
	}
	return 1;
}

int groupcheck_target(const char *t)
{
	return t && (strcmp(t, "all") == 0 || groupcheck_name(t));
}

static int role_ok(const cJSON *r)
{
	return !r || cJSON_IsNull(r) || (cJSON_IsString(r) && strlen(r->valuestring) <= GROUP_ROLE_MAX);
}

int groupcheck_list(const cJSON *v)
{
	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > GROUPS_MAX)
		return 0;
	const cJSON *g;
	cJSON_ArrayForEach(g, v)
	{
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(g, "name");
		if (!cJSON_IsObject(g) || !cJSON_IsString(n) || !groupcheck_name(n->valuestring) ||
		    !role_ok(cJSON_GetObjectItemCaseSensitive(g, "role")))
			return 0;
	}
	return 1;
}

int groupcheck_join(const cJSON *msg, const char **name, const char **role)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(msg, "name");
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(msg, "role");
	*name = NULL;
	*role = NULL;
	if (!cJSON_IsString(n) || !groupcheck_name(n->valuestring) || !role_ok(r))
		return -1;
	*name = n->valuestring;
	*role = cJSON_IsString(r) ? r->valuestring : NULL;
	return 0;
}

int groupcheck_leave(const cJSON *msg, const char **name)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(msg, "name");
	*name = NULL;
	if (!cJSON_IsString(n) || !groupcheck_name(n->valuestring))
		return -1;
	*name = n->valuestring;
	return 0;
}

int groupcheck_visible(const cJSON *msg, int *visible)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, "visible");
	if (!cJSON_IsBool(v))
		return -1;
	*visible = cJSON_IsTrue(v);
	return 0;
}

/* the string fields of a profile and their limits */
static const struct {
	const char *name;
	size_t max;
} profile_fields[] = {
    {"avatar", PROFILE_AVATAR_MAX},
    {"title", PROFILE_TITLE_MAX},
    {"bio", PROFILE_BIO_MAX},
};

int groupcheck_profile(const cJSON *msg, cJSON **patch)
{
	*patch = NULL;
	cJSON *p = cJSON_CreateObject();
	if (!p)
		return -2;
	int r = 0;
	for (size_t i = 0; r == 0 && i < sizeof profile_fields / sizeof profile_fields[0]; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, profile_fields[i].name);
		if (!v || cJSON_IsNull(v))
			continue;
		if (!cJSON_IsString(v))
			r = -2;
		else if (strlen(v->valuestring) > profile_fields[i].max)
			r = -1;
		else
			cJSON_AddStringToObject(p, profile_fields[i].name, v->valuestring);
	}
	const cJSON *caps = cJSON_GetObjectItemCaseSensitive(msg, "capabilities");
	if (r == 0 && caps && !cJSON_IsNull(caps)) {
		if (!cJSON_IsArray(caps)) {
			r = -2;
		} else if (cJSON_GetArraySize(caps) > PROFILE_CAPS_MAX) {
			r = -1;
		} else {
			cJSON *arr = cJSON_AddArrayToObject(p, "capabilities");
			const cJSON *c;
			cJSON_ArrayForEach(c, caps)
			{
				if (!cJSON_IsString(c)) {
					r = -2;
					break;
				}
				if (strlen(c->valuestring) > PROFILE_CAP_LEN_MAX) {
					r = -1;
					break;
				}
				cJSON_AddItemToArray(arr, cJSON_CreateString(c->valuestring));
			}
		}
	}
	if (r != 0) {
		cJSON_Delete(p);
		return r;
	}
	*patch = p;
	return 0;
}

static const char *const stats_fields[] = {"messagesIn", "messagesOut", "toolCalls", "uptime", "errors"};

int groupcheck_stats(const cJSON *msg, cJSON **stats)
{
	*stats = NULL;
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(msg, "stats");
	if (!cJSON_IsObject(s))
		return -1;
	cJSON *out = cJSON_CreateObject();
	if (!out)
		return -1;
	for (size_t i = 0; i < sizeof stats_fields / sizeof stats_fields[0]; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, stats_fields[i]);
		if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
			cJSON_AddNumberToObject(out, stats_fields[i], v->valuedouble);
	}
	*stats = out;
	return 0;
}

int groupcheck_moderation(const cJSON *msg, int target_only, struct mod_args *a)
{
	memset(a, 0, sizeof *a);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(msg, "target");
	if (cJSON_IsString(t) && t->valuestring[0] && strlen(t->valuestring) <= MOD_TARGET_MAX) {
		a->pick = MOD_TARGET;
		a->target = t->valuestring;
		return 0;
	}
	if (target_only)
		return -1;
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(msg, "stale");
	if (cJSON_IsNumber(st) && isfinite(st->valuedouble) && st->valuedouble >= 0 && st->valuedouble < 1e15) {
		a->pick = MOD_STALE;
		a->stale_ms = (int64_t)st->valuedouble;
		return 0;
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "all"))) {
		a->pick = MOD_ALL;
		return 0;
	}
	return -1;
}

/* n decimal digits at s, or -1 */
static int digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int64_t groupcheck_iso_ms(const char *s)
{
	if (!s)
		return -1;
	size_t len = strlen(s);
	/* 2026-04-04T21:53:40Z or 2026-04-04T21:53:40.123Z */
	if ((len != 20 && len != 24) || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
	    s[len - 1] != 'Z')
		return -1;
	int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2), h = digits(s + 11, 2),
	    mi = digits(s + 14, 2), se = digits(s + 17, 2), ms = 0;
	if (len == 24) {
		if (s[19] != '.')
			return -1;
		ms = digits(s + 20, 3);
	}
	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
	    se < 0 || se > 60 || ms < 0)
		return -1;
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = se};
	time_t t = timegm(&tm);
	if (t == (time_t)-1 || tm.tm_mday != d) /* 31 February and the like roll over */
		return -1;
	return (int64_t)t * 1000 + ms;
}

int groupcheck_apikey_create(const cJSON *msg, int64_t now, struct apikey_args *a, const char **why)
{
	memset(a, 0, sizeof *a);
	a->n_scopes = -1;
	*why = "label and at least one capability required";
	const cJSON *label = cJSON_GetObjectItemCaseSensitive(msg, "label");
	const cJSON *caps = cJSON_GetObjectItemCaseSensitive(msg, "capabilities");
	if (!cJSON_IsString(label) || !label->valuestring[0] || !cJSON_IsArray(caps) || cJSON_GetArraySize(caps) < 1)
		return -1;
	if (strlen(label->valuestring) > APIKEY_LABEL_MAX) {
		*why = "label is longer than 128 bytes";
		return -1;
	}
	a->label = label->valuestring;
	const cJSON *c;
	cJSON_ArrayForEach(c, caps)
	{
		unsigned bit = cJSON_IsString(c) ? apikey_cap_bit(c->valuestring) : 0;
		if (!bit || bit == APIKEY_CAP_STATUS) {
			*why = "unknown capability: expected send, read, state_write or admin";
			return -1;
		}
		a->caps |= bit;
	}
	const cJSON *sc = cJSON_GetObjectItemCaseSensitive(msg, "topicScopes");
	if (sc && !cJSON_IsNull(sc)) {
		if (!cJSON_IsArray(sc) || cJSON_GetArraySize(sc) > APIKEY_SCOPES_MAX) {
			*why = "topicScopes must be an array of at most 64 topic names";
			return -1;
		}
		a->n_scopes = 0;
		cJSON_ArrayForEach(c, sc)
		{
			if (!cJSON_IsString(c) || !c->valuestring[0] || strlen(c->valuestring) > GROUP_NAME_MAX) {
				*why = "topicScopes must be topic names (strings of 1-128 bytes)";
				return -1;
			}
			a->scopes[a->n_scopes++] = c->valuestring;
		}
	}
	const cJSON *ex = cJSON_GetObjectItemCaseSensitive(msg, "expiresAt");
	if (ex && !cJSON_IsNull(ex)) {
		int64_t ms = cJSON_IsString(ex) ? groupcheck_iso_ms(ex->valuestring) : -1;
		if (ms < 0) {
			*why = "expiresAt must be an ISO-8601 UTC time (2026-04-04T21:53:40.123Z)";
			return -1;
		}
		if (ms <= now) {
			*why = "expiresAt is in the past";
			return -1;
		}
		a->expires_ms = ms;
	}
	*why = NULL;
	return 0;
}
