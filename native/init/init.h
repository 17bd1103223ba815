/*
 * dyno-init: PID 1 of every dyno. Single-threaded, statically linked, exec'd straight after clone3
 * from a sealed memfd. It does all container setup (the Node parent is multi-threaded and may do
 * nothing but dup3+exec after clone), forks the app, reaps orphans and forwards stop signals.
 *
 * Error convention (crun style): a fallible function returns -1 after filling *err; the caller
 * returns -1 too, adding nothing. main() sends the error to the parent over the status channel.
 */
#ifndef DYNO_INIT_H
#define DYNO_INIT_H

#include <stddef.h>
#include <sys/types.h>
#include "../common/dyno_table.h"
#include "../common/protocol.h"

#define MAX_ARGS 512
#define MAX_ENV 2048
#define MAX_BINDS 32

struct bind_mount {
  const char *source; /* host path */
  const char *target; /* path inside the new root */
};

struct dyno_config {
  char *argv[MAX_ARGS + 1];
  int argc;
  char *env[MAX_ENV + 1];
  int envc;
  int shell;            /* 1: argv[0] is a command line for the shell (Procfile style) */
  const char *hostname; /* uts name */
  const char *stack;    /* lower layer of the root overlay */
  const char *app_dir;  /* lower layer of the /app overlay */
  const char *scratch;  /* empty host dir; a private tmpfs for the writable layers is mounted on it */
  unsigned long long scratch_bytes; /* size of that tmpfs; never 0, which tmpfs reads as "no limit" */
  struct bind_mount binds[MAX_BINDS]; /* read-only host directories (the host stack's /usr, ...) */
  int nbinds;
  uid_t uid;
  gid_t gid;
  unsigned long nofile;
  int die_with_parent;
  const char *net;      /* "none" (only lo) or "bridge" */
  const char *veth;     /* bridge: name of the host end */
  int bridge_ifindex;   /* bridge: the host bridge */
  int veth_ifindex;     /* bridge: ifindex asked for the host end (0: the kernel picks) */
  const char *address;  /* bridge: IPv4 address of eth0 */
  int prefix_len;
  const char *gateway;  /* bridge: the bridge's address */
};

struct init_error {
  int err;
  enum dyno_step step;
  char syscall[32];
  char detail[192];
};

/* status.c */
int fail(struct init_error *e, int err, enum dyno_step step, const char *syscall, const char *detail);
void send_status(int kind, const struct init_error *e, int pid, int wait_status);

/* config.c */
int read_config(int fd, struct dyno_config *cfg, struct init_error *e);

/* rootfs.c */
int setup_rootfs(const struct dyno_config *cfg, struct init_error *e);

/* identity.c */
int apply_rlimits(const struct dyno_config *cfg, struct init_error *e);
int become_dyno_user(const struct dyno_config *cfg, struct init_error *e);
int restrict_init(struct init_error *e);

/* seccomp.c */
int install_seccomp(struct init_error *e);

/* netdev.c: fd 4 is a NETLINK_ROUTE socket of the host's network namespace (bridge mode only) */
#define HOST_NETLINK_FD 4
int bring_loopback_up(struct init_error *e);
int setup_network(const struct dyno_config *cfg, struct init_error *e);

/* app.c */
int start_app(const struct dyno_config *cfg, struct init_error *e); /* returns the app pid */

/* supervise.c */
int supervise(pid_t app, int sigfd); /* returns the exit code for init */

#endif
