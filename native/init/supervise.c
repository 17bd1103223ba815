/*
 * PID 1's loop: reap every child (orphans are re-parented to us), forward stop signals to every
 * process of the dyno (Heroku signals all processes, not just the main one), and leave with the
 * app's status once the app has exited. Our exit makes the kernel SIGKILL whatever remains.
 */
#include <errno.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include "init.h"

static int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

/* Returns 1 once the app has been reaped (its status in *app_status). */
static int reap_children(pid_t app, int *app_status) {
  int found = 0, status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    if (pid == app) {
      *app_status = status;
      found = 1;
    }
  }
  return found;
}

int supervise(pid_t app, int sigfd) {
  int app_status = 0;
  for (;;) {
    struct signalfd_siginfo si;
    ssize_t n = read(sigfd, &si, sizeof si);
    if (n < 0 && errno == EINTR) continue;
    if (n != (ssize_t)sizeof si) break; /* cannot happen with a valid signalfd; fall back to a blocking wait */
    switch (si.ssi_signo) {
      case SIGCHLD:
        if (reap_children(app, &app_status)) {
          send_status(DYNO_STATUS_EXITED, NULL, app, app_status);
          return exit_code_of(app_status);
        }
        break;
      default:
        /* kill(-1) from PID 1 reaches every process of the namespace except ourselves. */
        kill(-1, (int)si.ssi_signo);
        break;
    }
  }
  while (waitpid(app, &app_status, 0) < 0 && errno == EINTR) {
  }
  send_status(DYNO_STATUS_EXITED, NULL, app, app_status);
  return exit_code_of(app_status);
}
