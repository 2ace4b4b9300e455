/*
 * auth.h: API keys (api_keys_file) and the check of "Authorization: Bearer <key>".
 *
 * Thread rules: loaded once before the HTTP server starts; ssimd_auth_check is then safe from
 * any thread (it only reads).
 */
#ifndef SSIMD_AUTH_H
#define SSIMD_AUTH_H

#include <stddef.h>

struct ssimd_auth;

/*
 * Read one key per line from `path` (blank lines and lines starting with '#' skipped, trailing
 * whitespace and CR trimmed). Keys are kept only as SHA-256 digests. On success *out is owned by
 * the caller (ssimd_auth_free). Returns 0, or -1 with `detail` set (unreadable file, no key).
 */
int ssimd_auth_load(const char *path, struct ssimd_auth **out, char *detail, size_t detail_size);

/* Whether `authorization` (the header's value, may be NULL) is "Bearer <a configured key>".
 * The comparison takes the same time whichever key, or which byte of it, differs. */
int ssimd_auth_check(const struct ssimd_auth *auth, const char *authorization);

/* NULL is allowed. */
void ssimd_auth_free(struct ssimd_auth *auth);

#endif /* SSIMD_AUTH_H */
