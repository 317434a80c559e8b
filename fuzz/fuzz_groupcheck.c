/* fuzz_groupcheck — libFuzzer target for the checks of the groups,
 * moderation and API key requests (worker/groupcheck.c): any JSON object is
 * run through every check, and what a check lets through must hold the
 * rules its callers rely on (docs/protocol.md §12.3-§12.5). */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/apikey.h"
#include "worker/groupcheck.h"

#define NOW_MS 1770000000000LL

static void need(int ok)
{
	if (!ok)
		abort();
}

static void name_rules(const char *s)
{
	size_t n = strlen(s);
	need(n >= 1 && n <= GROUP_NAME_MAX && strcmp(s, "all") != 0 && s[0] != '/' && s[n - 1] != '/' &&
	     !strstr(s, "//"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	cJSON *msg = cJSON_Parse(text);
	/* the raw bytes as a name and a target too */
	if (groupcheck_name(text))
		name_rules(text);
	if (groupcheck_target(text) && strcmp(text, "all") != 0)
		name_rules(text);
	free(text);
	if (!msg)
		return 0;
	const char *name, *role;
	if (groupcheck_join(msg, &name, &role) == 0) {
		name_rules(name);
		need(!role || strlen(role) <= GROUP_ROLE_MAX);
	}
	if (groupcheck_leave(msg, &name) == 0)
		name_rules(name);
	int visible;
	if (groupcheck_visible(msg, &visible) == 0)
		need(visible == 0 || visible == 1);
	cJSON *out = NULL;
	if (groupcheck_profile(msg, &out) == 0) {
		const cJSON *bio = cJSON_GetObjectItemCaseSensitive(out, "bio");
		need(!bio || strlen(bio->valuestring) <= PROFILE_BIO_MAX);
		need(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(out, "capabilities")) <= PROFILE_CAPS_MAX);
	} else {
		need(out == NULL);
	}
	cJSON_Delete(out);
	out = NULL;
	if (groupcheck_stats(msg, &out) == 0)
		need(cJSON_IsObject(out) && cJSON_GetArraySize(out) <= 5);
	cJSON_Delete(out);
	need(cJSON_IsArray(msg) || groupcheck_list(msg) == 0);
	if (groupcheck_list(cJSON_GetObjectItemCaseSensitive(msg, "groups")))
		need(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(msg, "groups")) <= GROUPS_MAX);
	struct mod_args ma;
	if (groupcheck_moderation(msg, 0, &ma) == 0)
		need(ma.pick != MOD_TARGET || (ma.target && ma.target[0] && strlen(ma.target) <= MOD_TARGET_MAX));
	if (groupcheck_moderation(msg, 1, &ma) == 0)
		need(ma.pick == MOD_TARGET && ma.target);
	struct apikey_args ka;
	const char *why;
	if (groupcheck_apikey_create(msg, NOW_MS, &ka, &why) == 0) {
		need(ka.label && ka.label[0] && ka.caps && !(ka.caps & APIKEY_CAP_STATUS) && !why);
		need(ka.n_scopes >= -1 && ka.n_scopes <= APIKEY_SCOPES_MAX);
		need(ka.expires_ms == 0 || ka.expires_ms > NOW_MS);
	} else {
		need(why != NULL);
	}
	const cJSON *ex = cJSON_GetObjectItemCaseSensitive(msg, "expiresAt");
	if (cJSON_IsString(ex))
		need(groupcheck_iso_ms(ex->valuestring) >= -1);
	cJSON_Delete(msg);
	return 0;
}
