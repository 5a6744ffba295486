/* fdatasync latency for the spool's write patterns (perf/RESULTS.md, "The spool's fsync").
 * Usage: fsync-probe DIR N RECORD_BYTES MODE
 *   MODE: append    write at the end of a growing file, then fdatasync
 *         falloc    overwrite a segment preallocated with fallocate (unwritten extents)
 *         zeroed    overwrite a segment filled with zeros and fsynced once (recycled)
 *         dsync     O_DSYNC writes appending to a growing file (no separate fdatasync)
 *         dsynczero O_DSYNC writes over a pre-zeroed segment
 *         direct    O_DIRECT|O_DSYNC 4 KiB-aligned writes over a pre-zeroed segment
 *                   (what glommio's DMA files do; the block holding the tail is rewritten)
 *         directsync O_DIRECT writes over a pre-zeroed segment, then fdatasync
 *         par2      two threads, each writing its own records over a pre-zeroed segment and
 *                   calling fdatasync: whether two syncs in flight overlap (group commit depth)
 * Prints p50/p90/p99/p99.9/max in microseconds of the write+sync of each record. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}
static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static void die(const char *w) { perror(w); exit(1); }

struct par { int fd, n; size_t rec, base; char *buf; double *lat; };
static void *par_run(void *arg) {
  struct par *p = arg;
  for (int i = 0; i < p->n; i++) {
    size_t at = p->base + (size_t)i * p->rec;
    double t0 = now_us();
    if (pwrite(p->fd, p->buf, p->rec, at) != (ssize_t)p->rec) die("pwrite");
    if (fdatasync(p->fd)) die("fdatasync");
    p->lat[i] = now_us() - t0;
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: %s DIR N RECORD_BYTES MODE\n", argv[0]); return 2; }
  const char *dir = argv[1];
  int n = atoi(argv[2]);
  size_t rec = (size_t)atol(argv[3]);
  const char *mode = argv[4];
  char path[4096];
  snprintf(path, sizeof path, "%s/probe-%s.seg", dir, mode);
  unlink(path);
  size_t seg = ((size_t)n * rec + (1 << 20)) & ~(size_t)4095;
  int direct = !strncmp(mode, "direct", 6);
  int dsync = !strcmp(mode, "dsync") || !strcmp(mode, "dsynczero") || !strcmp(mode, "direct");
  int par2 = !strcmp(mode, "par2");
  int prezero = par2 || !strcmp(mode, "zeroed") || !strcmp(mode, "dsynczero") || direct;
  int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
  if (fd < 0) die("open");
  if (!strcmp(mode, "falloc")) {
    if (fallocate(fd, 0, 0, seg)) die("fallocate");
    if (fsync(fd)) die("fsync");
  }
  if (prezero) {
    char *z = calloc(1, 1 << 20);
    for (size_t at = 0; at < seg; at += 1 << 20)
      if (pwrite(fd, z, (seg - at) < (1 << 20) ? seg - at : 1 << 20, at) < 0) die("zero");
    if (fsync(fd)) die("fsync");
    free(z);
  }
  int dfd = open(dir, O_RDONLY);
  fsync(dfd);
  close(dfd);
  close(fd);
  int flags = O_RDWR | (dsync ? O_DSYNC : 0) | (direct ? O_DIRECT : 0);
  fd = open(path, flags);
  if (fd < 0) die("reopen");
  char *buf;
  if (posix_memalign((void **)&buf, 4096, seg)) die("memalign");
  memset(buf, 0, seg);
  double *lat = malloc(sizeof(double) * n);
  if (par2) {
    pthread_t t[2];
    struct par ps[2];
    for (int k = 0; k < 2; k++) {
      ps[k] = (struct par){fd, n / 2, rec, (size_t)k * (n / 2) * rec, buf, lat + k * (n / 2)};
      pthread_create(&t[k], NULL, par_run, &ps[k]);
    }
    for (int k = 0; k < 2; k++) pthread_join(t[k], NULL);
    n = (n / 2) * 2;
  }
  size_t end = 0;
  for (int i = 0; i < n && !par2; i++) {
    memset(buf + end, 'a' + i % 26, rec);
    double t0 = now_us();
    if (direct) {
      size_t from = end & ~(size_t)4095;
      size_t to = (end + rec + 4095) & ~(size_t)4095;
      if (pwrite(fd, buf + from, to - from, from) != (ssize_t)(to - from)) die("pwrite");
      if (!dsync && fdatasync(fd)) die("fdatasync");
    } else {
      if (pwrite(fd, buf + end, rec, end) != (ssize_t)rec) die("pwrite");
      if (!dsync && fdatasync(fd)) die("fdatasync");
    }
    lat[i] = now_us() - t0;
    end += rec;
  }
  qsort(lat, n, sizeof(double), cmp);
  printf("%-10s n=%d rec=%zu  p50 %8.0f  p90 %8.0f  p99 %8.0f  p99.9 %8.0f  max %8.0f us\n", mode, n,
         rec, lat[n / 2], lat[n * 9 / 10], lat[n * 99 / 100], lat[n * 999 / 1000], lat[n - 1]);
  close(fd);
  unlink(path);
  return 0;
}
