/*
 * client.c: daemon process control and libcurl requests for the integration tests.
 */
#include "client.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Daemons started and not yet stopped: killed at exit, so that a failed assertion (which
 * jumps out of the test) cannot leave one running and holding ctest's output open. */
static pid_t started[16];

static void kill_leftovers(void) {
  for (size_t i = 0; i < sizeof(started) / sizeof(started[0]); i++)
    if (started[i] > 0) {
      kill(started[i], SIGKILL);
      waitpid(started[i], NULL, 0);
      started[i] = 0;
    }
}

static void remember(pid_t pid, pid_t replace) {
  static int registered;
  if (!registered) {
    atexit(kill_leftovers);
    registered = 1;
  }
  for (size_t i = 0; i < sizeof(started) / sizeof(started[0]); i++)
    if (started[i] == replace) {
      started[i] = pid;
      return;
    }
}

static void sleep_ms(long ms) {
  struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

int daemon_start(struct daemon_proc *proc, const char *const *args) {
  memset(proc, 0, sizeof(*proc));
  GError *error = NULL;
  gchar *path = NULL;
  int fd = g_file_open_tmp("ssimd-test-XXXXXX.log", &path, &error);
  if (fd < 0) {
    fprintf(stderr, "cannot create a log file: %s\n", error->message);
    g_error_free(error);
    return -1;
  }
  snprintf(proc->log_path, sizeof(proc->log_path), "%s", path);
  g_free(path);
  const char *argv[64] = {SSIMD_PATH, "--listen", "127.0.0.1:0"};
  size_t argc = 3;
  for (size_t i = 0; args != NULL && args[i] != NULL && argc < 63; i++)
    argv[argc++] = args[i];
  argv[argc] = NULL;
  pid_t pid = fork();
  if (pid < 0) {
    close(fd);
    return -1;
  }
  if (pid == 0) {
    dup2(fd, STDERR_FILENO);
    int null_fd = open("/dev/null", O_WRONLY);
    dup2(null_fd, STDOUT_FILENO);
    close(null_fd);
    close(fd);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(fd);
  proc->pid = pid;
  remember(pid, 0);
  /* Poll the log for the first line, 20 s at most. */
  for (int waited = 0; waited < 20000; waited += 10) {
    gchar *text = NULL;
    if (g_file_get_contents(proc->log_path, &text, NULL, NULL)) {
      const char *line = strstr(text, "listening on 127.0.0.1:");
      if (line != NULL) {
        proc->port = (unsigned)strtoul(line + strlen("listening on 127.0.0.1:"), NULL, 10);
        g_free(text);
        return 0;
      }
      g_free(text);
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      fprintf(stderr, "ssimd exited before listening (status %d)\n", status);
      remember(0, pid);
      proc->pid = 0;
      return -1;
    }
    sleep_ms(10);
  }
  fprintf(stderr, "ssimd did not print its listening line within 20 s\n");
  daemon_stop_signal(proc, SIGKILL, 5);
  return -1;
}

int daemon_stop_signal(struct daemon_proc *proc, int sig, double limit_s) {
  if (proc->pid <= 0)
    return -1;
  kill(proc->pid, sig);
  int status = 0;
  int rc = -1;
  for (long waited = 0;; waited += 10) {
    pid_t done = waitpid(proc->pid, &status, WNOHANG);
    if (done == proc->pid) {
      rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      break;
    }
    if (waited > (long)(limit_s * 1000)) {
      fprintf(stderr, "ssimd did not exit within %.0f s: killing it\n", limit_s);
      kill(proc->pid, SIGKILL);
      waitpid(proc->pid, &status, 0);
      break;
    }
    sleep_ms(10);
  }
  if (rc != 0) {
    /* Show what the daemon said: the reason is usually there (sanitizer reports too). */
    gchar *text = NULL;
    if (g_file_get_contents(proc->log_path, &text, NULL, NULL)) {
      size_t len = strlen(text);
      fprintf(stderr, "--- ssimd log (last 4000 bytes) ---\n%s\n",
              text + (len > 4000 ? len - 4000 : 0));
      g_free(text);
    }
  }
  unlink(proc->log_path);
  remember(0, proc->pid);
  proc->pid = 0;
  return rc;
}

int daemon_stop(struct daemon_proc *proc) {
  return daemon_stop_signal(proc, SIGTERM, 30);
}

long daemon_rss_kib(const struct daemon_proc *proc) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/status", (int)proc->pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  char line[256];
  long kib = -1;
  while (fgets(line, sizeof(line), f) != NULL)
    if (strncmp(line, "VmRSS:", 6) == 0)
      kib = strtol(line + 6, NULL, 10);
  fclose(f);
  return kib;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *user) {
  struct http_reply *reply = user;
  size_t n = size * nmemb;
  char *grown = realloc(reply->body, reply->len + n + 1);
  if (grown == NULL)
    return 0;
  reply->body = grown;
  memcpy(reply->body + reply->len, data, n);
  reply->len += n;
  reply->body[reply->len] = '\0';
  return n;
}

static void copy_header(const char *line, size_t n, const char *name, char *out, size_t size) {
  size_t name_len = strlen(name);
  if (n <= name_len + 1 || strncasecmp(line, name, name_len) != 0 || line[name_len] != ':')
    return;
  const char *value = line + name_len + 1;
  size_t value_len = n - name_len - 1;
  while (value_len > 0 && *value == ' ')
    value++, value_len--;
  while (value_len > 0 && (value[value_len - 1] == '\r' || value[value_len - 1] == '\n'))
    value_len--;
  snprintf(out, size, "%.*s", (int)value_len, value);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *user) {
  struct http_reply *reply = user;
  size_t n = size * nmemb;
  copy_header(data, n, "Retry-After", reply->retry_after, sizeof(reply->retry_after));
  copy_header(data, n, "Allow", reply->allow, sizeof(reply->allow));
  copy_header(data, n, "X-Request-Id", reply->request_id, sizeof(reply->request_id));
  copy_header(data, n, "Content-Type", reply->content_type, sizeof(reply->content_type));
  return n;
}

/* Run a prepared handle with the common settings. */
static int perform(CURL *curl, unsigned port, const char *path, const char *const *headers,
                   struct curl_slist *more, struct http_reply *reply) {
  memset(reply, 0, sizeof(*reply));
  char url[1024];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
  struct curl_slist *list = more;
  int expect = 0;
  for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
    list = curl_slist_append(list, headers[i]);
    expect |= strncasecmp(headers[i], "Expect:", 7) == 0;
  }
  /* No "Expect: 100-continue" round trip unless a test asks for one: the tests want the
   * server's first answer. */
  if (!expect)
    list = curl_slist_append(list, "Expect:");
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, reply);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, reply);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK)
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply->status);
  else
    fprintf(stderr, "curl %s: %s\n", path, curl_easy_strerror(rc));
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  if (reply->body == NULL)
    reply->body = calloc(1, 1);
  return rc == CURLE_OK ? 0 : -1;
}

int http_get(unsigned port, const char *path, const char *const *headers,
             struct http_reply *reply) {
  CURL *curl = curl_easy_init();
  return perform(curl, port, path, headers, NULL, reply);
}

int http_request(unsigned port, const char *method, const char *path, struct http_reply *reply) {
  CURL *curl = curl_easy_init();
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  return perform(curl, port, path, NULL, NULL, reply);
}

int http_post_form(unsigned port, const char *path, const struct form_part *parts, size_t count,
                   const char *const *headers, struct http_reply *reply) {
  CURL *curl = curl_easy_init();
  curl_mime *mime = curl_mime_init(curl);
  for (size_t i = 0; i < count; i++) {
    curl_mimepart *part = curl_mime_addpart(mime);
    curl_mime_name(part, parts[i].name);
    curl_mime_data(part, parts[i].data, parts[i].len);
    if (parts[i].filename != NULL) {
      curl_mime_filename(part, parts[i].filename);
      curl_mime_type(part, "application/octet-stream");
    }
  }
  curl_easy_setopt(curl, CURLOPT_MIMEPOST, mime);
  int rc = perform(curl, port, path, headers, NULL, reply);
  curl_mime_free(mime);
  return rc;
}

struct upload {
  const char *data;
  size_t len, sent;
};

static size_t on_read(char *buffer, size_t size, size_t nitems, void *user) {
  struct upload *up = user;
  size_t n = size * nitems;
  if (n > up->len - up->sent)
    n = up->len - up->sent;
  memcpy(buffer, up->data + up->sent, n);
  up->sent += n;
  return n;
}

int http_post_raw(unsigned port, const char *path, const char *content_type, const void *body,
                  size_t len, int chunked, const char *const *headers, struct http_reply *reply) {
  CURL *curl = curl_easy_init();
  char type_header[160];
  snprintf(type_header, sizeof(type_header), "Content-Type: %s", content_type);
  struct curl_slist *more = curl_slist_append(NULL, type_header);
  struct upload up = {body, len, 0};
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  if (chunked) {
    more = curl_slist_append(more, "Transfer-Encoding: chunked");
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(curl, CURLOPT_READDATA, &up);
  } else {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  }
  return perform(curl, port, path, headers, more, reply);
}

void http_reply_free(struct http_reply *reply) {
  free(reply->body);
  reply->body = NULL;
}

int reply_is_error(const struct http_reply *reply, long status, const char *code,
                   const char *field) {
  if (reply->status != status) {
    fprintf(stderr, "expected status %ld, got %ld: %s\n", status, reply->status, reply->body);
    return 0;
  }
  if (strncmp(reply->content_type, "application/json", 16) != 0) {
    fprintf(stderr, "error answer has Content-Type \"%s\"\n", reply->content_type);
    return 0;
  }
  json_error_t error;
  json_t *root = json_loads(reply->body, 0, &error);
  json_t *err = json_object_get(root, "error");
  const char *got_code = json_string_value(json_object_get(err, "code"));
  const char *message = json_string_value(json_object_get(err, "message"));
  const char *got_field = json_string_value(json_object_get(err, "field"));
  int ok = got_code != NULL && message != NULL && message[0] != '\0' &&
           (code == NULL || strcmp(got_code, code) == 0) &&
           (field == NULL || (got_field != NULL && strcmp(got_field, field) == 0));
  if (!ok)
    fprintf(stderr, "expected error code %s field %s, got: %s\n", code ? code : "(any)",
            field ? field : "(any)", reply->body);
  json_decref(root);
  return ok;
}

double metrics_value(const char *text, const char *prefix) {
  size_t n = strlen(prefix);
  for (const char *line = text; line != NULL && *line; line = strchr(line, '\n')) {
    if (*line == '\n')
      line++;
    if (strncmp(line, prefix, n) == 0 && line[n] == ' ')
      return strtod(line + n + 1, NULL);
  }
  return -1;
}
