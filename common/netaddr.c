/* netaddr — source keys by prefix (see netaddr.h). */
#include "common/netaddr.h"

#include <string.h>

static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void mask_bits(unsigned char *b, int nbytes, int keep)
{
	for (int i = 0; i < nbytes; i++) {
		int left = keep - i * 8;
		if (left >= 8)
			continue;
		b[i] &= left <= 0 ? 0 : (unsigned char)(0xff << (8 - left));
	}
}

void source_key(const unsigned char addr[16], int v4_prefix, int v6_prefix, unsigned char key[16])
{
	memcpy(key, addr, 16);
	if (memcmp(addr, v4_mapped, sizeof v4_mapped) == 0)
		mask_bits(key + 12, 4, v4_prefix < 0 ? 0 : v4_prefix > 32 ? 32 : v4_prefix);
	else
		mask_bits(key, 16, v6_prefix < 0 ? 0 : v6_prefix > 128 ? 128 : v6_prefix);
}

int addr_is_loopback(const unsigned char addr[16])
{
	static const unsigned char v6_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	if (memcmp(addr, v4_mapped, sizeof v4_mapped) == 0)
		return addr[12] == 127;
	return memcmp(addr, v6_loopback, 16) == 0;
}
