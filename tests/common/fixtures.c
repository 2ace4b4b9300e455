/*
 * fixtures.c: images for the tests of the shared server pieces, made in memory with libvips.
 */
#include "fixtures.h"
#include "decode.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

void fixture_init(void) {
  char detail[256] = "";
  if (ssimd_decode_init("ssimd-tests", detail, sizeof(detail)) != 0)
    fail_msg("libvips: %s", detail);
}

void *fixture_encode(const void *pixels, int width, int height, int bands, VipsBandFormat format,
                     VipsInterpretation interpretation, const char *suffix, size_t *len) {
  size_t size = (size_t)width * (size_t)height * (size_t)bands * vips_format_sizeof(format);
  VipsImage *image = vips_image_new_from_memory_copy(pixels, size, width, height, bands, format);
  if (image == NULL)
    fail_msg("vips_image_new_from_memory_copy: %s", vips_error_buffer());
  image->Type = interpretation;
  void *buf = NULL;
  if (vips_image_write_to_buffer(image, suffix, &buf, len, NULL) != 0)
    fail_msg("encoding %s: %s", suffix, vips_error_buffer());
  g_object_unref(image);
  return buf;
}

/* CRC-32 of PNG (ISO 3309), bitwise: the tests write a handful of bytes with it. */
static uint32_t png_crc(const unsigned char *data, size_t len) {
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < len; i++) {
    crc ^= data[i];
    for (int bit = 0; bit < 8; bit++)
      crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return crc ^ 0xffffffffu;
}

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

void fixture_png_chunk(unsigned char *buf, size_t *len, const char *type, const unsigned char *data,
                       size_t data_len) {
  unsigned char *chunk = buf + *len;
  put_be32(chunk, (uint32_t)data_len);
  memcpy(chunk + 4, type, 4);
  if (data_len > 0)
    memcpy(chunk + 8, data, data_len);
  put_be32(chunk + 8 + data_len, png_crc(chunk + 4, 4 + data_len));
  *len += 12 + data_len;
}
