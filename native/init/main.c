/* dyno-init entry point: setup in a fixed order, then supervise. See init.h. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sched.h>
#include <unistd.h>
#include "init.h"

static int setup_signals(sigset_t *watched, struct init_error *e) {
  /* Node ignores SIGPIPE and SIG_IGN survives exec: give every signal its default action back. */
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    signal(sig, SIG_DFL);
  }
  sigemptyset(watched);
  sigaddset(watched, SIGCHLD);
  /* the stop signals (dyno_table.h): supervise() relays them to every process of the dyno */
  for (size_t i = 0; i < DYNO_STOP_SIGNAL_COUNT; i++) sigaddset(watched, dyno_stop_signals[i].number);
  /* the parent blocked everything around clone3; keep only what we watch blocked */
  if (sigprocmask(SIG_SETMASK, watched, NULL) < 0) return fail(e, errno, DYNO_STEP_INIT, "sigprocmask", NULL);
  int fd = signalfd(-1, watched, SFD_CLOEXEC);
  if (fd < 0) return fail(e, errno, DYNO_STEP_INIT, "signalfd", NULL);
  return fd;
}

static int setup(struct dyno_config *cfg, int *sigfd, struct init_error *e) {
  if ((*sigfd = setup_signals(&(sigset_t){0}, e)) < 0) return -1;
  if (read_config(DYNO_STATUS_FD, cfg, e) < 0) return -1;
  /* Die with the supervisor unless told otherwise; our death ends the whole pid namespace. */
  if (cfg->die_with_parent && prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
    return fail(e, errno, DYNO_STEP_INIT, "prctl", "PR_SET_PDEATHSIG");
  /* getppid() is 0 in a new pid namespace, so ask the status channel whether the parent already left. */
  struct pollfd pfd = {DYNO_STATUS_FD, POLLRDHUP, 0};
  if (cfg->die_with_parent && poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLRDHUP)))
    return fail(e, ESRCH, DYNO_STEP_INIT, "poll", "the supervisor is gone");
  /* clone3 put us in the dyno cgroup already, so it becomes the root of our cgroup namespace. */
  if (unshare(CLONE_NEWCGROUP) < 0) return fail(e, errno, DYNO_STEP_CGROUP_NAMESPACE, "unshare", NULL);
  if (setup_rootfs(cfg, e) < 0) return -1;
  if (sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
    return fail(e, errno, DYNO_STEP_HOSTNAME, "sethostname", cfg->hostname);
  if (setup_network(cfg, e) < 0) return -1;
  return 0;
}

int main(void) {
  static struct dyno_config cfg;
  struct init_error e;
  int sigfd;
  memset(&e, 0, sizeof e);
  /* Only 0-2, the status channel and the host netlink socket may come from the parent, whatever it forgot to mark CLOEXEC. */
  syscall(SYS_close_range, HOST_NETLINK_FD + 1, ~0u, 0);
  /* Nothing in the dyno may ptrace us or open /proc/1/mem (CVE-2019-5736 class). */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  prctl(PR_SET_NAME, "dyno-init", 0, 0, 0);

  if (setup(&cfg, &sigfd, &e) < 0) {
    send_status(DYNO_STATUS_ERROR, &e, 0, 0);
    return 126;
  }
  int app = start_app(&cfg, &e);
  if (app < 0) {
    send_status(DYNO_STATUS_ERROR, &e, 0, 0);
    return 127;
  }
  if (restrict_init(&e) < 0) {
    send_status(DYNO_STATUS_ERROR, &e, 0, 0);
    kill(-1, SIGKILL);
    return 126;
  }
  send_status(DYNO_STATUS_STARTED, NULL, app, 0);
  return supervise(app, sigfd);
}
