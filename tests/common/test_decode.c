/*
 * test_decode.c: ssimd_decode and ssimd_image_pair_prepare on images generated with libvips.
 */
#include "decode.h"
#include "fixtures.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define MAX_PIXELS ((size_t)100 * 1000 * 1000)
#define W 37
#define H 23

/* A deterministic 8-bit value for pixel (x, y) of band b, covering 0 and 255. */
static uint8_t value8(int x, int y, int b) {
  return (uint8_t)((x * 7 + y * 13 + b * 101) % 256);
}

/* A 16-bit value that is not a multiple of 257, so that an 8-bit round trip would show. */
static uint16_t value16(int x, int y, int b) {
  return (uint16_t)(((x * 1031 + y * 7919 + b * 30011) * 3 + 1) % 65536);
}

/* Fill interleaved u8 pixels with value8. */
static uint8_t *make8(int bands) {
  uint8_t *p = malloc((size_t)W * H * (size_t)bands);
  assert_non_null(p);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int b = 0; b < bands; b++)
        p[((size_t)y * W + (size_t)x) * (size_t)bands + (size_t)b] = value8(x, y, b);
  return p;
}

static uint16_t *make16(int bands) {
  uint16_t *p = malloc((size_t)W * H * (size_t)bands * 2);
  assert_non_null(p);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int b = 0; b < bands; b++)
        p[((size_t)y * W + (size_t)x) * (size_t)bands + (size_t)b] = value16(x, y, b);
  return p;
}

/* Decode and expect success with the given geometry and dtype. */
static void decode_ok(const void *buf, size_t len, size_t channels, ssim_dtype dtype,
                      struct ssimd_image *out) {
  char detail[256] = "";
  int rc = ssimd_decode(buf, len, MAX_PIXELS, out, detail, sizeof(detail));
  if (rc != SSIMD_DECODE_OK)
    fail_msg("decode failed (%d): %s", rc, detail);
  assert_int_equal(out->width, W);
  assert_int_equal(out->height, H);
  assert_int_equal(out->channels, channels);
  assert_int_equal(out->dtype, dtype);
  assert_non_null(out->pixels);
}

/* Expect the decoded planar u8 pixels to equal value8 exactly. */
static void expect_exact8(const struct ssimd_image *image) {
  const uint8_t *p = image->pixels;
  for (size_t c = 0; c < image->channels; c++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        assert_int_equal(p[(c * H + (size_t)y) * W + (size_t)x], value8(x, y, (int)c));
}

static void expect_exact16(const struct ssimd_image *image) {
  const uint16_t *p = image->pixels;
  for (size_t c = 0; c < image->channels; c++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        assert_int_equal(p[(c * H + (size_t)y) * W + (size_t)x], value16(x, y, (int)c));
}

static void test_png8_grey_and_rgb(void **state) {
  (void)state;
  const int bands[2] = {1, 3};
  const VipsInterpretation interp[2] = {VIPS_INTERPRETATION_B_W, VIPS_INTERPRETATION_sRGB};
  for (int i = 0; i < 2; i++) {
    uint8_t *pixels = make8(bands[i]);
    size_t len = 0;
    void *png = fixture_encode(pixels, W, H, bands[i], VIPS_FORMAT_UCHAR, interp[i], ".png", &len);
    struct ssimd_image image;
    decode_ok(png, len, (size_t)bands[i], SSIM_DTYPE_U8, &image);
    expect_exact8(&image);
    ssimd_image_clear(&image);
    assert_null(image.pixels);
    assert_int_equal(image.width, 0);
    g_free(png);
    free(pixels);
  }
}

static void test_png16_grey_and_rgb_exact(void **state) {
  (void)state;
  const int bands[2] = {1, 3};
  const VipsInterpretation interp[2] = {VIPS_INTERPRETATION_GREY16, VIPS_INTERPRETATION_RGB16};
  for (int i = 0; i < 2; i++) {
    uint16_t *pixels = make16(bands[i]);
    size_t len = 0;
    void *png = fixture_encode(pixels, W, H, bands[i], VIPS_FORMAT_USHORT, interp[i], ".png", &len);
    struct ssimd_image image;
    decode_ok(png, len, (size_t)bands[i], SSIM_DTYPE_U16, &image);
    expect_exact16(&image);
    ssimd_image_clear(&image);
    g_free(png);
    free(pixels);
  }
}

/* RGBA over black: each colour becomes round(v * a / 255), in 8 bits. */
static void test_png8_rgba_flattened_over_black(void **state) {
  (void)state;
  uint8_t *pixels = make8(4);
  size_t len = 0;
  void *png =
      fixture_encode(pixels, W, H, 4, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_sRGB, ".png", &len);
  struct ssimd_image image;
  decode_ok(png, len, 3, SSIM_DTYPE_U8, &image);
  const uint8_t *p = image.pixels;
  for (size_t c = 0; c < 3; c++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        unsigned v = value8(x, y, (int)c), a = value8(x, y, 3);
        unsigned expected = (unsigned)((v * a) / 255.0 + 0.5);
        assert_int_equal(p[(c * H + (size_t)y) * W + (size_t)x], expected);
      }
  ssimd_image_clear(&image);
  g_free(png);
  free(pixels);
}

/* Grey + alpha: one channel, flattened the same way. */
static void test_png8_grey_alpha(void **state) {
  (void)state;
  uint8_t *pixels = make8(2);
  size_t len = 0;
  void *png =
      fixture_encode(pixels, W, H, 2, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_B_W, ".png", &len);
  struct ssimd_image image;
  decode_ok(png, len, 1, SSIM_DTYPE_U8, &image);
  const uint8_t *p = image.pixels;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      unsigned v = value8(x, y, 0), a = value8(x, y, 1);
      assert_int_equal(p[(size_t)y * W + (size_t)x], (unsigned)((v * a) / 255.0 + 0.5));
    }
  ssimd_image_clear(&image);
  g_free(png);
  free(pixels);
}

/* 16-bit RGBA: the alpha scale is 65535, not 255, and the result stays 16-bit. */
static void test_png16_rgba_flattened_over_black(void **state) {
  (void)state;
  uint16_t *pixels = make16(4);
  /* Pin a few pixels to the edges of the alpha range. */
  pixels[3] = 65535;     /* opaque: colour kept exactly */
  pixels[4 + 3] = 0;     /* transparent: black */
  pixels[8 + 3] = 32768; /* half */
  size_t len = 0;
  void *png =
      fixture_encode(pixels, W, H, 4, VIPS_FORMAT_USHORT, VIPS_INTERPRETATION_RGB16, ".png", &len);
  struct ssimd_image image;
  decode_ok(png, len, 3, SSIM_DTYPE_U16, &image);
  const uint16_t *p = image.pixels;
  for (size_t c = 0; c < 3; c++)
    for (size_t i = 0; i < (size_t)W * H; i++) {
      double v = pixels[i * 4 + c], a = pixels[i * 4 + 3];
      assert_int_equal(p[c * W * H + i], (unsigned)(v * a / 65535.0 + 0.5));
    }
  assert_int_equal(p[0], pixels[0]);
  assert_int_equal(p[1], 0);
  ssimd_image_clear(&image);
  g_free(png);
  free(pixels);
}

static void test_palette_png_is_rgb(void **state) {
  (void)state;
  uint8_t *pixels = make8(3);
  /* Four colours, so the palette holds them exactly. */
  for (size_t i = 0; i < (size_t)W * H; i++) {
    static const uint8_t colours[4][3] = {{0, 0, 0}, {255, 0, 0}, {0, 128, 255}, {255, 255, 255}};
    memcpy(&pixels[i * 3], colours[i % 4], 3);
  }
  size_t len = 0;
  void *png = fixture_encode(pixels, W, H, 3, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_sRGB,
                             ".png[palette]", &len);
  struct ssimd_image image;
  decode_ok(png, len, 3, SSIM_DTYPE_U8, &image);
  const uint8_t *p = image.pixels;
  for (size_t c = 0; c < 3; c++)
    for (size_t i = 0; i < (size_t)W * H; i++)
      assert_int_equal(p[c * W * H + i], pixels[i * 3 + c]);
  ssimd_image_clear(&image);
  g_free(png);
  free(pixels);
}

/* JPEG is lossy: a smooth image comes back close, in 8 bits, three channels. */
static void test_jpeg(void **state) {
  (void)state;
  uint8_t *pixels = make8(3);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int b = 0; b < 3; b++)
        pixels[((size_t)y * W + (size_t)x) * 3 + (size_t)b] = (uint8_t)(60 + x * 2 + y + b * 20);
  size_t len = 0;
  void *jpeg = fixture_encode(pixels, W, H, 3, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_sRGB,
                              ".jpg[Q=95]", &len);
  struct ssimd_image image;
  decode_ok(jpeg, len, 3, SSIM_DTYPE_U8, &image);
  const uint8_t *p = image.pixels;
  for (size_t c = 0; c < 3; c++)
    for (size_t i = 0; i < (size_t)W * H; i++)
      assert_true(abs((int)p[c * W * H + i] - (int)pixels[i * 3 + c]) <= 12);
  ssimd_image_clear(&image);
  g_free(jpeg);
  free(pixels);
}

static void test_webp_lossless_exact(void **state) {
  (void)state;
  uint8_t *pixels = make8(3);
  size_t len = 0;
  void *webp = fixture_encode(pixels, W, H, 3, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_sRGB,
                              ".webp[lossless]", &len);
  struct ssimd_image image;
  decode_ok(webp, len, 3, SSIM_DTYPE_U8, &image);
  expect_exact8(&image);
  ssimd_image_clear(&image);
  g_free(webp);
  free(pixels);
}

static void test_tiff_8_16_and_float(void **state) {
  (void)state;
  uint8_t *p8 = make8(3);
  size_t len = 0;
  void *tiff =
      fixture_encode(p8, W, H, 3, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_sRGB, ".tif", &len);
  struct ssimd_image image;
  decode_ok(tiff, len, 3, SSIM_DTYPE_U8, &image);
  expect_exact8(&image);
  ssimd_image_clear(&image);
  g_free(tiff);
  free(p8);

  uint16_t *p16 = make16(1);
  tiff = fixture_encode(p16, W, H, 1, VIPS_FORMAT_USHORT, VIPS_INTERPRETATION_GREY16, ".tif", &len);
  decode_ok(tiff, len, 1, SSIM_DTYPE_U16, &image);
  expect_exact16(&image);
  ssimd_image_clear(&image);
  g_free(tiff);
  free(p16);

  /* Float samples are used as they are, clamped to [0, 1]; NaN becomes 0. */
  float *pf = malloc((size_t)W * H * 3 * sizeof(float));
  assert_non_null(pf);
  for (size_t i = 0; i < (size_t)W * H * 3; i++)
    pf[i] = (float)((double)(i % 17) / 8.0 - 0.5); /* -0.5 .. 1.5 */
  pf[5] = NAN;
  tiff = fixture_encode(pf, W, H, 3, VIPS_FORMAT_FLOAT, VIPS_INTERPRETATION_sRGB, ".tif", &len);
  decode_ok(tiff, len, 3, SSIM_DTYPE_F32, &image);
  const float *p = image.pixels;
  for (size_t c = 0; c < 3; c++)
    for (size_t i = 0; i < (size_t)W * H; i++) {
      float v = pf[i * 3 + c];
      float expected = !(v > 0.0f) ? 0.0f : v > 1.0f ? 1.0f : v;
      assert_float_equal(p[c * W * H + i], expected, 0.0);
    }
  ssimd_image_clear(&image);
  g_free(tiff);
  free(pf);
}

/* An animated GIF gives its first frame, at the height of one frame. */
static void test_gif_first_frame(void **state) {
  (void)state;
  const int frames = 2;
  uint8_t *pixels = calloc((size_t)W * H * (size_t)frames * 3, 1);
  assert_non_null(pixels);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      uint8_t *first = &pixels[((size_t)y * W + (size_t)x) * 3];
      uint8_t *second = &pixels[((size_t)(y + H) * W + (size_t)x) * 3];
      first[0] = (x + y) % 2 ? 255 : 0; /* checkerboard of red and black */
      second[2] = 255;                  /* all blue */
    }
  VipsImage *strip = vips_image_new_from_memory_copy(pixels, (size_t)W * H * (size_t)frames * 3, W,
                                                     H * frames, 3, VIPS_FORMAT_UCHAR);
  assert_non_null(strip);
  strip->Type = VIPS_INTERPRETATION_sRGB;
  vips_image_set_int(strip, "page-height", H);
  void *gif = NULL;
  size_t len = 0;
  if (vips_image_write_to_buffer(strip, ".gif", &gif, &len, NULL) != 0)
    fail_msg("gifsave: %s", vips_error_buffer());
  g_object_unref(strip);

  struct ssimd_image image;
  char detail[256] = "";
  assert_int_equal(ssimd_decode(gif, len, MAX_PIXELS, &image, detail, sizeof(detail)),
                   SSIMD_DECODE_OK);
  assert_int_equal(image.width, W);
  assert_int_equal(image.height, H);
  assert_int_equal(image.dtype, SSIM_DTYPE_U8);
  const uint8_t *p = image.pixels;
  size_t plane = (size_t)W * H;
  for (size_t c = 0; c < image.channels; c++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        /* Grey output would be a different layout; the frame is red/black, so expect RGB. */
        assert_int_equal(image.channels, 3);
        uint8_t expected = c == 0 && (x + y) % 2 ? 255 : 0;
        assert_int_equal(p[c * plane + (size_t)y * W + (size_t)x], expected);
      }
  ssimd_image_clear(&image);
  g_free(gif);
  free(pixels);
}

/* CMYK is converted to RGB: no ink is (close to) white, full black ink is dark. */
static void test_cmyk_jpeg_to_rgb(void **state) {
  (void)state;
  uint8_t *pixels = calloc((size_t)W * H * 4, 1);
  assert_non_null(pixels);
  for (size_t i = (size_t)W * H / 2; i < (size_t)W * H; i++)
    pixels[i * 4 + 3] = 255;
  size_t len = 0;
  void *jpeg = fixture_encode(pixels, W, H, 4, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_CMYK,
                              ".jpg[Q=100]", &len);
  struct ssimd_image image;
  decode_ok(jpeg, len, 3, SSIM_DTYPE_U8, &image);
  const uint8_t *p = image.pixels;
  size_t plane = (size_t)W * H;
  for (size_t c = 0; c < 3; c++) {
    assert_true(p[c * plane + 0] > 200);
    assert_true(p[c * plane + plane - 1] < 80);
  }
  ssimd_image_clear(&image);
  g_free(jpeg);
  free(pixels);
}

/* Truncated pixel data is an error, never a partly grey image. */
static void test_truncated_is_corrupt(void **state) {
  (void)state;
  uint8_t *pixels = make8(3);
  const char *suffixes[] = {".png", ".jpg", ".webp", ".gif"};
  for (size_t s = 0; s < sizeof(suffixes) / sizeof(suffixes[0]); s++) {
    size_t len = 0;
    void *buf = fixture_encode(pixels, W, H, 3, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_sRGB,
                               suffixes[s], &len);
    for (int quarter = 2; quarter <= 3; quarter++) {
      struct ssimd_image image;
      char detail[256] = "";
      int rc =
          ssimd_decode(buf, len * (size_t)quarter / 4, MAX_PIXELS, &image, detail, sizeof(detail));
      if (rc != SSIMD_DECODE_ECORRUPT)
        fail_msg("%s cut to %d/4: status %d (%s)", suffixes[s], quarter, rc, detail);
      assert_null(image.pixels);
      assert_true(strlen(detail) > 0);
    }
    g_free(buf);
  }
  free(pixels);
}

static void test_not_an_image_is_eformat(void **state) {
  (void)state;
  unsigned char junk[4096];
  uint32_t x = 12345;
  for (size_t i = 0; i < sizeof(junk); i++) {
    x = x * 1103515245u + 12345u;
    junk[i] = (unsigned char)(x >> 16);
  }
  struct ssimd_image image;
  char detail[256] = "";
  assert_int_equal(ssimd_decode(junk, sizeof(junk), MAX_PIXELS, &image, detail, sizeof(detail)),
                   SSIMD_DECODE_EFORMAT);
  assert_null(image.pixels);
  assert_non_null(strstr(detail, "format"));
  assert_int_equal(ssimd_decode(junk, 0, MAX_PIXELS, &image, NULL, 0), SSIMD_DECODE_EFORMAT);
  assert_int_equal(ssimd_decode(NULL, 10, MAX_PIXELS, &image, NULL, 0), SSIMD_DECODE_EFORMAT);
  /* A binary PPM is an image, but not of a format trusted with client bytes. */
  unsigned char ppm[11 + 12] = "P6\n2 2\n255\n";
  memset(ppm + 11, 200, 12);
  assert_int_equal(ssimd_decode(ppm, sizeof(ppm), MAX_PIXELS, &image, NULL, 0),
                   SSIMD_DECODE_EFORMAT);
}

/* A PNG whose header claims 100000 x 100000 is refused from the header, at once. */
static void test_huge_header_is_etoobig(void **state) {
  (void)state;
  unsigned char png[128];
  size_t len = 8;
  memcpy(png, "\x89PNG\r\n\x1a\n", 8);
  const unsigned char ihdr[13] = {0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 2, 0, 0, 0};
  fixture_png_chunk(png, &len, "IHDR", ihdr, sizeof(ihdr));
  const unsigned char idat[] = {0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01};
  fixture_png_chunk(png, &len, "IDAT", idat, sizeof(idat));
  fixture_png_chunk(png, &len, "IEND", NULL, 0);

  struct ssimd_image image;
  char detail[256] = "";
  clock_t start = clock();
  assert_int_equal(ssimd_decode(png, len, MAX_PIXELS, &image, detail, sizeof(detail)),
                   SSIMD_DECODE_ETOOBIG);
  double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
  assert_true(seconds < 0.5);
  assert_non_null(strstr(detail, "100000x100000"));
  assert_null(image.pixels);
}

/* The limit is width*height, inclusive. */
static void test_max_pixels_boundary(void **state) {
  (void)state;
  uint8_t *pixels = make8(1);
  size_t len = 0;
  void *png =
      fixture_encode(pixels, W, H, 1, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_B_W, ".png", &len);
  struct ssimd_image image;
  assert_int_equal(ssimd_decode(png, len, (size_t)W * H, &image, NULL, 0), SSIMD_DECODE_OK);
  ssimd_image_clear(&image);
  assert_int_equal(ssimd_decode(png, len, (size_t)W * H - 1, &image, NULL, 0),
                   SSIMD_DECODE_ETOOBIG);
  g_free(png);
  free(pixels);
}

/* Build an image by hand: planar, `channels` x h x w of dtype, filled with `fill` pattern. */
static void image_make(struct ssimd_image *image, size_t w, size_t h, size_t channels,
                       ssim_dtype dtype) {
  size_t count = w * h * channels;
  size_t size = dtype == SSIM_DTYPE_U8 ? 1 : dtype == SSIM_DTYPE_U16 ? 2 : 4;
  image->width = w;
  image->height = h;
  image->channels = channels;
  image->dtype = dtype;
  image->pixels = malloc(count * size);
  assert_non_null(image->pixels);
  for (size_t i = 0; i < count; i++) {
    if (dtype == SSIM_DTYPE_U8)
      ((uint8_t *)image->pixels)[i] = (uint8_t)(i * 37 % 256);
    else if (dtype == SSIM_DTYPE_U16)
      ((uint16_t *)image->pixels)[i] = (uint16_t)(i * 4099 % 65536);
    else
      ((float *)image->pixels)[i] = (float)(i % 101) / 100.0f;
  }
}

static void test_pair_size_mismatch_names_both(void **state) {
  (void)state;
  struct ssimd_image a, b;
  image_make(&a, 40, 30, 3, SSIM_DTYPE_U8);
  image_make(&b, 41, 30, 3, SSIM_DTYPE_U8);
  char detail[256] = "";
  assert_int_equal(
      ssimd_image_pair_prepare(&a, &b, SSIMD_COLOR_RGB, SSIM_PADDING_SAME, detail, sizeof(detail)),
      SSIMD_DECODE_EMISMATCH);
  assert_non_null(strstr(detail, "40x30"));
  assert_non_null(strstr(detail, "41x30"));
  ssimd_image_clear(&a);
  ssimd_image_clear(&b);
}

static void test_pair_grey_vs_colour(void **state) {
  (void)state;
  struct ssimd_image a, b;
  image_make(&a, 20, 20, 1, SSIM_DTYPE_U8);
  image_make(&b, 20, 20, 3, SSIM_DTYPE_U8);
  char detail[256] = "";
  assert_int_equal(
      ssimd_image_pair_prepare(&a, &b, SSIMD_COLOR_RGB, SSIM_PADDING_SAME, detail, sizeof(detail)),
      SSIMD_DECODE_EMISMATCH);
  assert_non_null(strstr(detail, "grey"));
  assert_non_null(strstr(detail, "luma"));

  /* With luma they compare: the grey image is its own luma, widened to float. */
  const uint8_t *grey = a.pixels;
  uint8_t grey_copy[400];
  memcpy(grey_copy, grey, sizeof(grey_copy));
  uint8_t rgb_copy[1200];
  memcpy(rgb_copy, b.pixels, sizeof(rgb_copy));
  assert_int_equal(
      ssimd_image_pair_prepare(&a, &b, SSIMD_COLOR_LUMA, SSIM_PADDING_SAME, detail, sizeof(detail)),
      SSIMD_DECODE_OK);
  assert_int_equal(a.channels, 1);
  assert_int_equal(b.channels, 1);
  assert_int_equal(a.dtype, SSIM_DTYPE_F32);
  assert_int_equal(b.dtype, SSIM_DTYPE_F32);
  const float *fa = a.pixels, *fb = b.pixels;
  for (size_t i = 0; i < 400; i++) {
    assert_float_equal(fa[i], grey_copy[i] / 255.0, 1e-7);
    double y = 0.2126 * rgb_copy[i] / 255.0 + 0.7152 * rgb_copy[400 + i] / 255.0 +
               0.0722 * rgb_copy[800 + i] / 255.0;
    assert_float_equal(fb[i], y, 1e-6);
  }
  ssimd_image_clear(&a);
  ssimd_image_clear(&b);
}

/* Luma of two grey 16-bit images changes nothing; of two colour ones gives float. */
static void test_pair_luma_keeps_grey(void **state) {
  (void)state;
  struct ssimd_image a, b;
  image_make(&a, 20, 20, 1, SSIM_DTYPE_U16);
  image_make(&b, 20, 20, 1, SSIM_DTYPE_U16);
  uint16_t before[400];
  memcpy(before, a.pixels, sizeof(before));
  assert_int_equal(ssimd_image_pair_prepare(&a, &b, SSIMD_COLOR_LUMA, SSIM_PADDING_SAME, NULL, 0),
                   SSIMD_DECODE_OK);
  assert_int_equal(a.dtype, SSIM_DTYPE_U16);
  assert_memory_equal(a.pixels, before, sizeof(before));
  ssimd_image_clear(&a);
  ssimd_image_clear(&b);

  image_make(&a, 20, 20, 3, SSIM_DTYPE_U16);
  image_make(&b, 20, 20, 3, SSIM_DTYPE_U16);
  uint16_t rgb[1200];
  memcpy(rgb, a.pixels, sizeof(rgb));
  assert_int_equal(ssimd_image_pair_prepare(&a, &b, SSIMD_COLOR_LUMA, SSIM_PADDING_SAME, NULL, 0),
                   SSIMD_DECODE_OK);
  assert_int_equal(a.channels, 1);
  assert_int_equal(a.dtype, SSIM_DTYPE_F32);
  const float *fa = a.pixels;
  for (size_t i = 0; i < 400; i++) {
    double y = (0.2126 * rgb[i] + 0.7152 * rgb[400 + i] + 0.0722 * rgb[800 + i]) / 65535.0;
    assert_float_equal(fa[i], y, 1e-6);
  }
  ssimd_image_clear(&a);
  ssimd_image_clear(&b);
}

/* Mixed dtypes are unified exactly: u8 to u16 as v*257, u8 to float as v/255. */
static void test_pair_dtype_unification(void **state) {
  (void)state;
  struct ssimd_image a, b;
  image_make(&a, 16, 16, 3, SSIM_DTYPE_U8);
  image_make(&b, 16, 16, 3, SSIM_DTYPE_U16);
  uint8_t before[768];
  memcpy(before, a.pixels, sizeof(before));
  assert_int_equal(ssimd_image_pair_prepare(&a, &b, SSIMD_COLOR_RGB, SSIM_PADDING_SAME, NULL, 0),
                   SSIMD_DECODE_OK);
  assert_int_equal(a.dtype, SSIM_DTYPE_U16);
  assert_int_equal(b.dtype, SSIM_DTYPE_U16);
  for (size_t i = 0; i < 768; i++)
    assert_int_equal(((uint16_t *)a.pixels)[i], before[i] * 257u);
  ssimd_image_clear(&a);
  ssimd_image_clear(&b);

  image_make(&a, 16, 16, 1, SSIM_DTYPE_F32);
  image_make(&b, 16, 16, 1, SSIM_DTYPE_U8);
  memcpy(before, b.pixels, 256);
  assert_int_equal(ssimd_image_pair_prepare(&a, &b, SSIMD_COLOR_RGB, SSIM_PADDING_SAME, NULL, 0),
                   SSIMD_DECODE_OK);
  assert_int_equal(b.dtype, SSIM_DTYPE_F32);
  for (size_t i = 0; i < 256; i++)
    assert_float_equal(((float *)b.pixels)[i], before[i] / 255.0, 1e-7);
  ssimd_image_clear(&a);
  ssimd_image_clear(&b);
}

static void test_pair_too_small_for_valid(void **state) {
  (void)state;
  struct ssimd_image a, b;
  image_make(&a, 10, 40, 1, SSIM_DTYPE_U8);
  image_make(&b, 10, 40, 1, SSIM_DTYPE_U8);
  char detail[256] = "";
  assert_int_equal(
      ssimd_image_pair_prepare(&a, &b, SSIMD_COLOR_RGB, SSIM_PADDING_VALID, detail, sizeof(detail)),
      SSIMD_DECODE_ETOOSMALL);
  assert_non_null(strstr(detail, "10x40"));
  /* The same pair is fine with same padding. */
  assert_int_equal(ssimd_image_pair_prepare(&a, &b, SSIMD_COLOR_RGB, SSIM_PADDING_SAME, NULL, 0),
                   SSIMD_DECODE_OK);
  ssimd_image_clear(&a);
  ssimd_image_clear(&b);

  image_make(&a, 11, 11, 1, SSIM_DTYPE_U8);
  image_make(&b, 11, 11, 1, SSIM_DTYPE_U8);
  assert_int_equal(ssimd_image_pair_prepare(&a, &b, SSIMD_COLOR_RGB, SSIM_PADDING_VALID, NULL, 0),
                   SSIMD_DECODE_OK);
  ssimd_image_clear(&a);
  ssimd_image_clear(&b);
  ssimd_image_clear(&a); /* clearing twice is allowed */
}

int main(void) {
  fixture_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_png8_grey_and_rgb),
      cmocka_unit_test(test_png16_grey_and_rgb_exact),
      cmocka_unit_test(test_png8_rgba_flattened_over_black),
      cmocka_unit_test(test_png8_grey_alpha),
      cmocka_unit_test(test_png16_rgba_flattened_over_black),
      cmocka_unit_test(test_palette_png_is_rgb),
      cmocka_unit_test(test_jpeg),
      cmocka_unit_test(test_webp_lossless_exact),
      cmocka_unit_test(test_tiff_8_16_and_float),
      cmocka_unit_test(test_gif_first_frame),
      cmocka_unit_test(test_cmyk_jpeg_to_rgb),
      cmocka_unit_test(test_truncated_is_corrupt),
      cmocka_unit_test(test_not_an_image_is_eformat),
      cmocka_unit_test(test_huge_header_is_etoobig),
      cmocka_unit_test(test_max_pixels_boundary),
      cmocka_unit_test(test_pair_size_mismatch_names_both),
      cmocka_unit_test(test_pair_grey_vs_colour),
      cmocka_unit_test(test_pair_luma_keeps_grey),
      cmocka_unit_test(test_pair_dtype_unification),
      cmocka_unit_test(test_pair_too_small_for_valid),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  ssimd_decode_shutdown();
  return failed;
}
