/* LD_PRELOAD shim for the signal-during-save test: sends this process a signal from inside a
 * checkpoint write, deterministically. fsync and fdatasync of a file whose path contains
 * "/checkpoints/" raise the next signal of RAE_TEST_SAVE_SIGNALS (e.g. "USR1,TERM": SIGUSR1 at
 * the first such fsync, SIGTERM at the second), then sync as usual. Only in the process whose
 * OMPI_COMM_WORLD_RANK (or PMIX_RANK) equals RAE_TEST_SAVE_SIGNAL_RANK (default 0), so the other
 * ranks learn of the stop only through the step-boundary agreement. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int next_signal(void) {
  static int used = 0;
  const char* list = getenv("RAE_TEST_SAVE_SIGNALS");
  const char* want = getenv("RAE_TEST_SAVE_SIGNAL_RANK");
  const char* rank = getenv("OMPI_COMM_WORLD_RANK");
  if (!rank) rank = getenv("PMIX_RANK");
  if (!list || atoi(rank ? rank : "0") != atoi(want ? want : "0")) return 0;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", list);
  int i = 0;
  for (char* tok = strtok(buf, ","); tok; tok = strtok(NULL, ","), ++i) {
    if (i != used) continue;
    ++used;
    if (!strcmp(tok, "USR1")) return SIGUSR1;
    if (!strcmp(tok, "TERM")) return SIGTERM;
    return 0;
  }
  return 0;
}

static void maybe_signal(int fd) {
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return;
  path[n] = 0;
  if (!strstr(path, "/checkpoints/")) return;
  int sig = next_signal();
  if (sig) {
    fprintf(stderr, "signal_in_save: raising %s during the checkpoint write (fsync of %s)\n",
            sig == SIGUSR1 ? "SIGUSR1" : "SIGTERM", path);
    kill(getpid(), sig);
  }
}

int fsync(int fd) {
  static int (*real)(int) = NULL;
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  maybe_signal(fd);
  return real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int) = NULL;
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  maybe_signal(fd);
  return real(fd);
}
