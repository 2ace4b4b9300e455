/*
 * auth.c: API keys as SHA-256 digests, compared in constant time.
 *
 * Comparing digests rather than the keys themselves makes the time independent of the key's
 * length too; every configured key is compared, so the time does not say which one matched.
 */
#include "auth.h"

#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DIGEST_LEN 32

struct ssimd_auth {
  size_t count;
  uint8_t (*digests)[DIGEST_LEN];
};

static void digest_of(const char *text, size_t len, uint8_t out[DIGEST_LEN]) {
  GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
  g_checksum_update(sum, (const guchar *)text, (gssize)len);
  gsize out_len = DIGEST_LEN;
  g_checksum_get_digest(sum, out, &out_len);
  g_checksum_free(sum);
}

int ssimd_auth_load(const char *path, struct ssimd_auth **out, char *detail, size_t detail_size) {
  *out = NULL;
  gchar *contents = NULL;
  gsize length = 0;
  GError *error = NULL;
  if (!g_file_get_contents(path, &contents, &length, &error)) {
    snprintf(detail, detail_size, "api_keys_file %s: %s", path, error->message);
    g_error_free(error);
    return -1;
  }
  struct ssimd_auth *auth = calloc(1, sizeof(*auth));
  size_t capacity = 0;
  int rc = 0;
  for (char *line = contents, *next; auth != NULL && line != NULL && *line; line = next) {
    next = strchr(line, '\n');
    if (next != NULL)
      *next++ = '\0';
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
      line[--len] = '\0';
    if (len == 0 || line[0] == '#')
      continue;
    if (auth->count == capacity) {
      capacity = capacity ? capacity * 2 : 8;
      void *grown = realloc(auth->digests, capacity * DIGEST_LEN);
      if (grown == NULL) {
        rc = -1;
        break;
      }
      auth->digests = grown;
    }
    digest_of(line, len, auth->digests[auth->count++]);
  }
  /* The keys are secrets: do not leave them in freed memory. */
  memset(contents, 0, length);
  g_free(contents);
  if (auth == NULL || rc != 0) {
    snprintf(detail, detail_size, "api_keys_file %s: out of memory", path);
    ssimd_auth_free(auth);
    return -1;
  }
  if (auth->count == 0) {
    snprintf(detail, detail_size, "api_keys_file %s holds no key", path);
    ssimd_auth_free(auth);
    return -1;
  }
  *out = auth;
  return 0;
}

int ssimd_auth_check(const struct ssimd_auth *auth, const char *authorization) {
  if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
    return 0;
  const char *token = authorization + 7;
  while (*token == ' ')
    token++;
  uint8_t digest[DIGEST_LEN];
  digest_of(token, strlen(token), digest);
  unsigned matched = 0;
  for (size_t k = 0; k < auth->count; k++) {
    unsigned diff = 0;
    for (size_t i = 0; i < DIGEST_LEN; i++)
      diff |= (unsigned)(digest[i] ^ auth->digests[k][i]);
    matched |= (unsigned)(diff == 0);
  }
  return matched != 0 && token[0] != '\0';
}

void ssimd_auth_free(struct ssimd_auth *auth) {
  if (auth == NULL)
    return;
  free(auth->digests);
  free(auth);
}
