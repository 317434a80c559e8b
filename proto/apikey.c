/* apikey — API key secrets, hashes and capability names (see apikey.h). */
#include "proto/apikey.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *const apikey_cap_names[] = {"send", "read", "state_write", "admin", "status", NULL};

unsigned apikey_cap_bit(const char *name)
{
	for (unsigned i = 0; apikey_cap_names[i]; i++)
		if (strcmp(apikey_cap_names[i], name) == 0)
			return 1u << i;
	return 0;
}

const char *apikey_cap_name(unsigned bit)
{
	for (unsigned i = 0; apikey_cap_names[i]; i++)
		if (bit == 1u << i)
			return apikey_cap_names[i];
	return NULL;
}

void apikey_generate(char *out, size_t cap)
{
	unsigned char raw[32];
	char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	randombytes_buf(raw, sizeof raw);
	sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	snprintf(out, cap, "cm_%s", b64);
	sodium_memzero(raw, sizeof raw);
	sodium_memzero(b64, sizeof b64);
}

void apikey_hash(const char *secret, char out[APIKEY_HASH_HEX])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, (const unsigned char *)secret, strlen(secret));
	sodium_bin2hex(out, APIKEY_HASH_HEX, h, sizeof h);
}

int apikey_well_formed(const char *s)
{
	if (strncmp(s, "cm_", 3) != 0 || strlen(s) != 46)
		return 0;
	for (const char *p = s + 3; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_'))
			return 0;
	return 1;
}

int apikey_bearer(const char *header, char *out, size_t cap)
{
	const char *p = header;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
		return -1;
	p += 6;
	while (*p == ' ' || *p == '\t')
		p++;
	size_t n = strcspn(p, " \t");
	const char *q = p + n;
	while (*q == ' ' || *q == '\t')
		q++;
	if (n == 0 || *q || n >= cap)
		return -1;
	memcpy(out, p, n);
	out[n] = 0;
	return 0;
}
