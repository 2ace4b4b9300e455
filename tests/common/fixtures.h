/*
 * fixtures.h: images for the tests of the shared server pieces, made in memory with libvips.
 */
#ifndef SSIMD_TEST_FIXTURES_H
#define SSIMD_TEST_FIXTURES_H

#include <vips/vips.h>

#include <stddef.h>

/*
 * Encode `width` x `height` interleaved pixels of `bands` bands in `format` as an image file in
 * memory, the file type chosen by `suffix` as libvips reads it (".png", ".webp[lossless]", ...).
 * Returns a g_malloc'ed buffer the caller frees with g_free, its length in *len; fails the
 * calling test when libvips cannot encode.
 */
void *fixture_encode(const void *pixels, int width, int height, int bands, VipsBandFormat format,
                     VipsInterpretation interpretation, const char *suffix, size_t *len);

/* Start libvips through ssimd_decode_init; fails the calling test when it cannot. */
void fixture_init(void);

/* Append a PNG chunk (length, type, data, CRC) at buf + *len and advance *len. */
void fixture_png_chunk(unsigned char *buf, size_t *len, const char *type, const unsigned char *data,
                       size_t data_len);

#endif /* SSIMD_TEST_FIXTURES_H */
