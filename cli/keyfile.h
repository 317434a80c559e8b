/* keyfile — meshctl's JSON files: key files ({pubkey, secretKey}) and peer
 * configs ({broker, meshId, memberId, displayName, pubkey, secretKey}).  Files
 * holding a secret are written 0600, never over an existing file unless
 * forced, and refused when group or world can access them. */
#ifndef CLI_KEYFILE_H
#define CLI_KEYFILE_H

#include <cjson/cJSON.h>
#include <limits.h>

#define KEYFILE_ID_MAX 64 /* ids: < 64 bytes, like the broker's hello check */

struct keyfile_key {
	char pubkey[65]; /* lowercase hex */
	unsigned char pk[32];
	unsigned char sk[64]; /* libsodium ed25519 secret key (seed ‖ pk) */
	int has_secret;
};

struct keyfile_peer {
	char broker[1024]; /* "" when the file has none */
	char mesh_id[KEYFILE_ID_MAX];
	char member_id[KEYFILE_ID_MAX];
	char display_name[256];
	char api_key[128]; /* optional "apiKey" (a cm_ REST key, sent by meshctl hook); "" when none */
	struct keyfile_key key; /* has_secret is always 1 */
};

/* Read a key file.  need_secret: secretKey must be present.  0 ok, -1 after
 * printing a one-line error.  Wipe k->sk (sodium_memzero) when done. */
int keyfile_read_key(const char *path, int need_secret, struct keyfile_key *k);
/* Read a peer config (always secret).  0 ok, -1 after printing an error. */
int keyfile_read_peer(const char *path, struct keyfile_peer *p);

/* An output file being written: created at once (O_EXCL) so that a clash is
 * found before any other work, or, with force, a temp file renamed over the
 * target on commit. */
struct keyfile_out {
	char path[PATH_MAX];
	char tmp[PATH_MAX]; /* "" unless force */
	int fd;
};
int keyfile_out_open(struct keyfile_out *o, const char *path, int force);
/* Write doc (pretty JSON + newline), fsync, close (rename when forced).  The
 * text is wiped from memory.  0 ok, -1 after printing an error (the partial
 * file is removed). */
int keyfile_out_commit(struct keyfile_out *o, const cJSON *doc);
/* Remove what keyfile_out_open created. */
void keyfile_out_abort(struct keyfile_out *o);

/* {"pubkey":..,"secretKey":..}; the caller wipes with keyfile_json_free. */
cJSON *keyfile_key_json(const struct keyfile_key *k);
/* {"broker","meshId","memberId","displayName","pubkey","secretKey"[,"apiKey"]} */
cJSON *keyfile_peer_json(const struct keyfile_peer *p);
/* Wipe every string value (secrets) in doc, then free it. */
void keyfile_json_free(cJSON *doc);

/* meshctl keygen --out FILE [--force] */
int keyfile_keygen(int argc, char **argv);

#endif
