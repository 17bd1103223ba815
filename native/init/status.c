/* Status messages to the parent (fd 3, SOCK_SEQPACKET: one struct per message). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include "init.h"

static void copy_field(char *dst, size_t size, const char *src) {
  if (!src) src = "";
  strncpy(dst, src, size - 1);
  dst[size - 1] = '\0';
}

int fail(struct init_error *e, int err, enum dyno_step step, const char *syscall, const char *detail) {
  e->err = err;
  e->step = step;
  copy_field(e->syscall, sizeof e->syscall, syscall);
  copy_field(e->detail, sizeof e->detail, detail);
  return -1;
}

void send_status(int kind, const struct init_error *e, int pid, int wait_status) {
  struct dyno_status s;
  memset(&s, 0, sizeof s);
  s.kind = (uint32_t)kind;
  s.pid = pid;
  s.wait_status = wait_status;
  if (e) {
    s.err = e->err;
    copy_field(s.step, sizeof s.step, dyno_step_name(e->step));
    copy_field(s.syscall, sizeof s.syscall, e->syscall);
    copy_field(s.detail, sizeof s.detail, e->detail);
  }
  /* The parent may be gone (then PDEATHSIG ends us soon); nothing useful to do on failure. */
  while (send(DYNO_STATUS_FD, &s, sizeof s, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}
