/*
 * Wire format between the addon (parent, in Node) and dyno-init (PID 1 of the dyno).
 *
 * fd 3 of dyno-init is one end of a SOCK_SEQPACKET socketpair (the "status channel").
 * The parent writes exactly one message before clone3: the dyno config, a sequence of
 * NUL-terminated "key=value" records (keys below; ENV and ARG may repeat, order kept).
 * dyno-init answers with fixed-size struct dyno_status messages.
 * EOF on the channel without a STARTED message means dyno-init died during setup.
 */
#ifndef MANIFOLD_PROTOCOL_H
#define MANIFOLD_PROTOCOL_H

#include <stdint.h>

#define DYNO_CONFIG_MAX (256 * 1024)
#define DYNO_STATUS_FD 3

enum dyno_status_kind {
  DYNO_STATUS_ERROR = 1,   /* setup or exec failed: errno, step, syscall, detail */
  DYNO_STATUS_STARTED = 2, /* the app was exec'd; pid = its pid inside the dyno */
  DYNO_STATUS_EXITED = 3,  /* the app ended; wait_status = raw status from waitpid */
  DYNO_STATUS_WARNING = 4, /* something non-fatal the operator should know (detail) */
};

struct dyno_status {
  uint32_t kind;
  int32_t err;         /* errno value, 0 if none */
  int32_t pid;         /* STARTED: app pid inside the dyno; host-side pid is known to the parent */
  int32_t wait_status; /* EXITED: raw status as returned by waitpid */
  char step[32];       /* a name of dyno_table.h: "config", "mount-root", "seccomp", "exec", ... */
  char syscall[32];    /* "mount", "pivot_root", "execve", ... */
  char detail[192];    /* a path or a short explanation */
};

#endif
