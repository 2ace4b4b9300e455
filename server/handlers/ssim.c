/*
 * ssim.c: POST /ssim, one pair of images, as multipart/form-data (parts img1 and img2, options
 * as query parameters or form fields) or as JSON ({"img1": base64, "img2": base64, options}).
 *
 * The connection thread parses the body into two encoded blobs and the options, reserves a
 * queue slot and suspends; the job then goes through the scheduler (decode and encode on the
 * pool, compute on the engine worker) and its answer resumes the connection.
 */
#include "handlers.h"

#include "../app.h"
#include "../http.h"
#include "../job.h"
#include "../scheduler.h"

#include <glib.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FORM_FIELD_MAX 16
#define FORM_VALUE_MAX 64

/* A growing byte buffer. */
struct buffer {
  char *data;
  size_t len, cap;
};

static int buffer_append(struct buffer *b, const char *data, size_t size) {
  if (size == 0)
    return 0; /* memcpy from or to NULL is undefined even for 0 bytes */
  if (size > b->cap - b->len) {
    size_t cap = b->cap ? b->cap : 64 * 1024;
    while (cap - b->len < size)
      cap *= 2;
    char *grown = realloc(b->data, cap);
    if (grown == NULL)
      return -1;
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, size);
  b->len += size;
  return 0;
}

enum body_form { FORM_MULTIPART, FORM_JSON };

/* Per-request parse state; connection thread only; freed in on_free. */
struct ssim_state {
  enum body_form form;
  struct MHD_PostProcessor *post;
  struct buffer img1, img2, json;
  struct {
    char name[32];
    char value[FORM_VALUE_MAX + 1];
    size_t len;
  } fields[FORM_FIELD_MAX];
  size_t field_count;
  struct ssimd_options options;
  char bad_field[64]; /* a client-named field, kept for the error body */
};

/* The job of one pair: the common job, then what only this handler needs. */
struct ssim_job {
  struct ssimd_job job; /* first: the scheduler sees only this */
  void *blob1, *blob2;  /* encoded images, freed once decoded */
  size_t len1, len2;
  uint64_t max_pixels;
};

/* Apply one option by name; on failure answer-to-be is recorded on `req`. */
static int apply_option(struct ssimd_request *req, struct ssim_state *state, const char *name,
                        const char *value) {
  char detail[160];
  int rc = ssimd_options_set(&state->options, name, value, detail, sizeof(detail));
  if (rc == 0)
    return 0;
  snprintf(state->bad_field, sizeof(state->bad_field), "%s", name);
  if (rc > 0) {
    char message[160];
    snprintf(message, sizeof(message), "unknown option \"%.64s\"", name);
    ssimd_request_fail(req, SSIMD_ERROR_UNKNOWN_OPTION, message, state->bad_field);
  } else {
    ssimd_request_fail(req, SSIMD_ERROR_BAD_OPTION, detail, state->bad_field);
  }
  return -1;
}

static enum MHD_Result on_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value) {
  (void)kind;
  struct ssimd_request *req = cls;
  return apply_option(req, req->state, key, value != NULL ? value : "") == 0 ? MHD_YES : MHD_NO;
}

static enum MHD_Result on_form_data(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *filename, const char *content_type,
                                    const char *transfer_encoding, const char *data, uint64_t off,
                                    size_t size) {
  (void)kind;
  (void)filename;
  (void)content_type;
  (void)transfer_encoding;
  struct ssimd_request *req = cls;
  struct ssim_state *state = req->state;
  if (key == NULL) {
    ssimd_request_fail(req, SSIMD_ERROR_BAD_MULTIPART, "a part has no name", NULL);
    return MHD_NO;
  }
  int is1 = strcmp(key, "img1") == 0, is2 = strcmp(key, "img2") == 0;
  if (is1 || is2) {
    struct buffer *b = is1 ? &state->img1 : &state->img2;
    if (off == 0 && b->len > 0) {
      ssimd_request_fail(req, SSIMD_ERROR_BAD_MULTIPART, "a part is given twice",
                         is1 ? "img1" : "img2");
      return MHD_NO;
    }
    if (buffer_append(b, data, size) != 0) {
      ssimd_request_fail(req, SSIMD_ERROR_ENGINE_UNAVAILABLE, "out of memory", NULL);
      return MHD_NO;
    }
    return MHD_YES;
  }
  /* An option field; its value may come in several pieces. */
  if (off == 0) {
    if (state->field_count == FORM_FIELD_MAX) {
      ssimd_request_fail(req, SSIMD_ERROR_BAD_MULTIPART, "too many form fields", NULL);
      return MHD_NO;
    }
    snprintf(state->fields[state->field_count].name, sizeof(state->fields[0].name), "%s", key);
    state->fields[state->field_count].len = 0;
    state->field_count++;
  }
  if (state->field_count == 0)
    return MHD_NO;
  size_t k = state->field_count - 1;
  if (state->fields[k].len + size > FORM_VALUE_MAX) {
    snprintf(state->bad_field, sizeof(state->bad_field), "%s", key);
    ssimd_request_fail(req, SSIMD_ERROR_BAD_OPTION, "the option value is too long",
                       state->bad_field);
    return MHD_NO;
  }
  if (size > 0)
    memcpy(state->fields[k].value + state->fields[k].len, data, size);
  state->fields[k].len += size;
  state->fields[k].value[state->fields[k].len] = '\0';
  return MHD_YES;
}

/* Whether a Content-Type is `type`, parameters aside. */
static int content_type_is(const char *header, const char *type) {
  size_t n = strlen(type);
  return header != NULL && strncasecmp(header, type, n) == 0 &&
         (header[n] == '\0' || header[n] == ';' || header[n] == ' ');
}

static int ssim_begin(struct ssimd_request *req) {
  struct ssimd_app *app = req->app;
  /* A full queue: a client that waits for a go-ahead can retry elsewhere without uploading. */
  if (!ssimd_scheduler_ready(app->scheduler))
    return ssimd_request_refuse(req, SSIMD_ERROR_QUEUE_FULL, NULL, NULL);
  struct ssim_state *state = calloc(1, sizeof(*state));
  if (state == NULL) {
    ssimd_request_send_error(req, SSIMD_ERROR_ENGINE_UNAVAILABLE, "out of memory", NULL);
    return 1;
  }
  req->state = state;
  ssimd_options_init(&state->options);
  const char *type = ssimd_request_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (content_type_is(type, "multipart/form-data")) {
    state->form = FORM_MULTIPART;
    state->post = MHD_create_post_processor(req->connection, 64 * 1024, on_form_data, req);
    if (state->post == NULL) {
      ssimd_request_send_error(req, SSIMD_ERROR_BAD_MULTIPART,
                               "multipart/form-data needs a boundary parameter", NULL);
      return 1;
    }
  } else if (content_type_is(type, "application/json")) {
    state->form = FORM_JSON;
  } else {
    ssimd_request_send_error(req, SSIMD_ERROR_UNSUPPORTED_MEDIA, NULL, NULL);
    return 1;
  }
  /* Query options are checked before the body, so that a typo costs no upload. */
  MHD_get_connection_values(req->connection, MHD_GET_ARGUMENT_KIND, on_query_arg, req);
  if (ssimd_request_failed(req)) {
    ssimd_request_send_error(req, req->deferred_error, req->deferred_message, req->deferred_field);
    return 1;
  }
  return 0;
}

static void ssim_body(struct ssimd_request *req, const char *data, size_t size) {
  struct ssim_state *state = req->state;
  if (state->form == FORM_MULTIPART) {
    if (MHD_post_process(state->post, data, size) != MHD_YES)
      ssimd_request_fail(req, SSIMD_ERROR_BAD_MULTIPART, NULL, NULL);
  } else if (buffer_append(&state->json, data, size) != 0) {
    ssimd_request_fail(req, SSIMD_ERROR_ENGINE_UNAVAILABLE, "out of memory", NULL);
  }
}

/* Strict base64 (RFC 4648 section 4): the standard alphabet, length a multiple of 4, '='
 * only as one or two final characters, no whitespace. g_base64_decode skips what it does not
 * know, so it only runs on text that passed this. */
static int base64_is_strict(const char *text, size_t len) {
  if (len == 0 || len % 4 != 0)
    return 0;
  size_t pad = 0;
  if (text[len - 1] == '=')
    pad = text[len - 2] == '=' ? 2 : 1;
  for (size_t i = 0; i < len - pad; i++) {
    char c = text[i];
    int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             c == '+' || c == '/';
    if (!ok)
      return 0;
  }
  return 1;
}

static int json_image(struct ssimd_request *req, json_t *value, const char *field,
                      struct buffer *out) {
  if (!json_is_string(value)) {
    ssimd_request_fail(req, SSIMD_ERROR_BAD_BASE64, "the image must be a base64 string", field);
    return -1;
  }
  const char *text = json_string_value(value);
  size_t len = json_string_length(value);
  if (!base64_is_strict(text, len)) {
    ssimd_request_fail(req, SSIMD_ERROR_BAD_BASE64, NULL, field);
    return -1;
  }
  gsize decoded_len = 0;
  guchar *decoded = g_base64_decode(text, &decoded_len);
  int rc = buffer_append(out, (const char *)decoded, decoded_len);
  g_free(decoded);
  if (rc != 0)
    ssimd_request_fail(req, SSIMD_ERROR_ENGINE_UNAVAILABLE, "out of memory", NULL);
  return rc;
}

static void parse_json(struct ssimd_request *req, struct ssim_state *state) {
  json_error_t error;
  json_t *root = json_loadb(state->json.data != NULL ? state->json.data : "", state->json.len,
                            JSON_REJECT_DUPLICATES, &error);
  free(state->json.data);
  state->json = (struct buffer){0};
  if (root == NULL || !json_is_object(root)) {
    char message[256];
    if (root == NULL)
      snprintf(message, sizeof(message), "bad JSON at line %d column %d: %s", error.line,
               error.column, error.text);
    else
      snprintf(message, sizeof(message), "the body must be a JSON object");
    ssimd_request_fail(req, SSIMD_ERROR_BAD_JSON, message, NULL);
    json_decref(root);
    return;
  }
  const char *key;
  json_t *value;
  json_object_foreach(root, key, value) {
    if (strcmp(key, "img1") == 0) {
      if (json_image(req, value, "img1", &state->img1) != 0)
        break;
    } else if (strcmp(key, "img2") == 0) {
      if (json_image(req, value, "img2", &state->img2) != 0)
        break;
    } else {
      char number[32];
      const char *text = NULL;
      if (json_is_string(value))
        text = json_string_value(value);
      else if (json_is_number(value) &&
               snprintf(number, sizeof(number), "%.17g", json_number_value(value)) > 0)
        text = number;
      if (text == NULL) {
        /* No option takes an empty value: this names an unknown option as such, and a known
         * one with the values it takes. */
        apply_option(req, state, key, "");
        break;
      }
      if (apply_option(req, state, key, text) != 0)
        break;
    }
  }
  json_decref(root);
}

static void job_decode(struct ssimd_job *job);
static void job_encode(struct ssimd_job *job);
static void job_free(struct ssimd_job *job);

static const struct ssimd_job_ops ssim_job_ops = {
    .decode = job_decode,
    .encode = job_encode,
    .free = job_free,
};

static void ssim_end(struct ssimd_request *req) {
  struct ssim_state *state = req->state;
  struct ssimd_app *app = req->app;
  if (state->form == FORM_MULTIPART) {
    enum MHD_Result complete = MHD_destroy_post_processor(state->post);
    state->post = NULL;
    if (complete != MHD_YES)
      ssimd_request_fail(req, SSIMD_ERROR_BAD_MULTIPART, "the multipart body is incomplete", NULL);
    for (size_t k = 0; k < state->field_count && !ssimd_request_failed(req); k++)
      apply_option(req, state, state->fields[k].name, state->fields[k].value);
  } else {
    parse_json(req, state);
  }
  if (!ssimd_request_failed(req) && state->img1.len == 0)
    ssimd_request_fail(req, SSIMD_ERROR_MISSING_PART, "img1 is missing or empty", "img1");
  if (!ssimd_request_failed(req) && state->img2.len == 0)
    ssimd_request_fail(req, SSIMD_ERROR_MISSING_PART, "img2 is missing or empty", "img2");
  if (ssimd_request_failed(req)) {
    ssimd_request_send_error(req, req->deferred_error, req->deferred_message, req->deferred_field);
    return;
  }
  if (ssimd_scheduler_admit(app->scheduler, 1) != 0) {
    ssimd_request_send_error(req, SSIMD_ERROR_QUEUE_FULL, NULL, NULL);
    return;
  }
  struct ssim_job *pair = calloc(1, sizeof(*pair));
  if (pair == NULL) {
    ssimd_scheduler_release(app->scheduler, 1);
    ssimd_request_send_error(req, SSIMD_ERROR_ENGINE_UNAVAILABLE, "out of memory", NULL);
    return;
  }
  struct ssimd_job *job = &pair->job;
  job->ops = &ssim_job_ops;
  job->req = req;
  job->options = state->options;
  job->start_ns = req->start_ns;
  job->backend = app->backend_name;
  job->error = SSIMD_ERROR_COUNT;
  /* The blobs move to the job: the request's state no longer needs them. */
  pair->blob1 = state->img1.data;
  pair->len1 = state->img1.len;
  pair->blob2 = state->img2.data;
  pair->len2 = state->img2.len;
  state->img1 = state->img2 = (struct buffer){0};
  pair->max_pixels = app->config->max_pixels;
  ssimd_request_suspend(req);
  ssimd_scheduler_submit(app->scheduler, job);
}

static void ssim_free(struct ssimd_request *req) {
  struct ssim_state *state = req->state;
  if (state == NULL)
    return;
  if (state->post != NULL)
    MHD_destroy_post_processor(state->post);
  free(state->img1.data);
  free(state->img2.data);
  free(state->json.data);
  free(state);
  req->state = NULL;
}

/* Pool thread: both images to pixels, made comparable, or the first error. */
static void job_decode(struct ssimd_job *job) {
  struct ssim_job *pair = (struct ssim_job *)job;
  uint64_t start = ssimd_now_ns();
  char detail[256] = "";
  int rc =
      ssimd_decode(pair->blob1, pair->len1, pair->max_pixels, &job->img1, detail, sizeof(detail));
  if (rc != 0) {
    ssimd_job_fail(job, ssimd_error_from_decode(rc), detail, "img1");
  } else {
    rc =
        ssimd_decode(pair->blob2, pair->len2, pair->max_pixels, &job->img2, detail, sizeof(detail));
    if (rc != 0)
      ssimd_job_fail(job, ssimd_error_from_decode(rc), detail, "img2");
  }
  free(pair->blob1);
  free(pair->blob2);
  pair->blob1 = pair->blob2 = NULL;
  if (rc == 0) {
    rc = ssimd_image_pair_prepare(&job->img1, &job->img2, job->options.color, job->options.padding,
                                  detail, sizeof(detail));
    if (rc != 0)
      ssimd_job_fail(job, ssimd_error_from_decode(rc), detail, NULL);
  }
  if (rc != 0) {
    ssimd_image_clear(&job->img1);
    ssimd_image_clear(&job->img2);
  } else {
    job->width = job->img1.width;
    job->height = job->img1.height;
    job->channels = job->img1.channels;
    job->item.key = (struct ssimd_batch_key){
        .channels = job->img1.channels,
        .height = job->img1.height,
        .width = job->img1.width,
        .dtype = job->img1.dtype,
        .padding = job->options.padding,
        .want_map = job->options.map != SSIMD_OUTPUT_NONE,
        .want_gradient = (int)job->options.gradient,
    };
  }
  job->decode_ms = (double)(ssimd_now_ns() - start) / 1e6;
}

/* Pool thread: the JSON answer of API.md. */
static void job_encode(struct ssimd_job *job) {
  if (job->error != SSIMD_ERROR_COUNT)
    return;
  uint64_t now = ssimd_now_ns();
  struct ssimd_timing timing = {
      .decode = job->decode_ms,
      .queue = (double)(job->dispatched_ns - job->decoded_ns) / 1e6,
      .compute = job->compute_ms,
      .total = (double)(now - job->start_ns) / 1e6,
  };
  struct ssimd_result result = {
      .ssim = job->score,
      .channel_scores = job->channel_scores,
      .width = job->width,
      .height = job->height,
      .channels = job->channels,
      .options = &job->options,
      .backend = job->backend,
      .timing = &timing,
      .map = job->map,
      .map_height = job->map_height,
      .map_width = job->map_width,
      .grad_img1 = job->grad_img1,
      .grad_img2 = job->grad_img2,
      .worst = job->worst,
  };
  char detail[256] = "";
  json_t *body = ssimd_response_encode(&result, detail, sizeof(detail));
  /* 12 significant digits: float32 scores need fewer, and timings read as written. */
  char *text = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
  json_decref(body);
  struct ssimd_answer *answer = text != NULL ? calloc(1, sizeof(*answer)) : NULL;
  if (answer == NULL) {
    free(text);
    ssimd_job_fail(job, SSIMD_ERROR_ENGINE_UNAVAILABLE,
                   detail[0] ? detail : "out of memory encoding the answer", NULL);
    return;
  }
  answer->status = 200;
  answer->content_type = "application/json";
  answer->body = text;
  answer->len = strlen(text);
  answer->pairs = 1;
  job->answer = answer;
  /* The big buffers are in the answer now; free them before the job waits for the loop. */
  free(job->map);
  free(job->grad_img1);
  free(job->grad_img2);
  job->map = job->grad_img1 = job->grad_img2 = NULL;
}

static void job_free(struct ssimd_job *job) {
  struct ssim_job *pair = (struct ssim_job *)job;
  free(pair->blob1);
  free(pair->blob2);
  ssimd_image_clear(&job->img1);
  ssimd_image_clear(&job->img2);
  free(job->channel_scores);
  free(job->map);
  free(job->grad_img1);
  free(job->grad_img2);
  ssimd_answer_free(job->answer);
  free(pair);
}

const struct ssimd_handler ssimd_handler_ssim = {
    .method = "POST",
    .path = "/ssim",
    .name = "ssim",
    .body_limit = SSIMD_BODY_LIMIT_CONFIG,
    .on_begin = ssim_begin,
    .on_body = ssim_body,
    .on_end = ssim_end,
    .on_free = ssim_free,
};
