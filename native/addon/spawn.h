// clone3 of a dyno: new pid, mount, uts, ipc, net and cgroup namespaces, a pidfd, and (optionally)
// placement straight into the dyno's cgroup. The child only dup3s its fds and execs dyno-init.
#pragma once

#include <stdint.h>
#include <sys/types.h>

struct SpawnRequest {
  int helper_fd;        // sealed memfd holding dyno-init
  int cgroup_fd;        // directory fd of the dyno's cgroup, or -1
  int stdio[3];         // become fds 0, 1, 2 of dyno-init (and so of the app)
  int status_fd;        // child end of the status channel, becomes fd 3
  int netlink_fd;       // NETLINK_ROUTE socket of the host namespace for bridge networking, becomes fd 4; or -1
  uint64_t namespaces;  // CLONE_NEW* flags
};

struct SpawnResult {
  pid_t pid;            // host pid of dyno-init, or -1
  int pidfd;
  int err;              // errno when pid == -1
  const char *syscall;  // the call that failed
};

SpawnResult CloneDyno(const SpawnRequest &req);
