/*
 * decode_ceiling.c: how many image pairs per second libvips decodes on all cores, through the
 * daemon's own decode path (ssimd_decode): the ceiling of the daemon's throughput on a CPU.
 *
 * Usage: bench_decode_ceiling IMG1 IMG2 SECONDS
 * Prints: RESULT pairs_per_s=<n> threads=<cores>
 */
#include "decode.h"

#include <glib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static gchar *files[2];
static gsize lengths[2];
static atomic_long pairs_done;
static atomic_int stop;

static void *decode_loop(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    for (int i = 0; i < 2; i++) {
      struct ssimd_image image = {0};
      if (ssimd_decode(files[i], lengths[i], 1000000000, &image, NULL, 0) != 0) {
        fprintf(stderr, "decode failed\n");
        exit(1);
      }
      ssimd_image_clear(&image);
    }
    atomic_fetch_add(&pairs_done, 1);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s IMG1 IMG2 SECONDS\n", argv[0]);
    return 2;
  }
  char detail[256];
  if (ssimd_decode_init(argv[0], detail, sizeof(detail)) != 0) {
    fprintf(stderr, "%s\n", detail);
    return 1;
  }
  for (int i = 0; i < 2; i++)
    if (!g_file_get_contents(argv[1 + i], &files[i], &lengths[i], NULL)) {
      fprintf(stderr, "cannot read %s\n", argv[1 + i]);
      return 1;
    }
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int threads = cores > 0 ? (int)cores : 1;
  pthread_t ids[256];
  if (threads > 256)
    threads = 256;
  for (int t = 0; t < threads; t++)
    pthread_create(&ids[t], NULL, decode_loop, NULL);
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  sleep((unsigned)atoi(argv[3]));
  atomic_store(&stop, 1);
  for (int t = 0; t < threads; t++)
    pthread_join(ids[t], NULL);
  clock_gettime(CLOCK_MONOTONIC, &end);
  double seconds = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
  printf("RESULT pairs_per_s=%.2f threads=%d\n", (double)atomic_load(&pairs_done) / seconds,
         threads);
  g_free(files[0]);
  g_free(files[1]);
  ssimd_decode_shutdown();
  return 0;
}
