// Raw syscall wrappers for what glibc 2.36 does not wrap (crun's syscall_<name> convention).
#pragma once

#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

struct clone3_args {
  uint64_t flags;
  uint64_t pidfd;
  uint64_t child_tid;
  uint64_t parent_tid;
  uint64_t exit_signal;
  uint64_t stack;
  uint64_t stack_size;
  uint64_t tls;
  uint64_t set_tid;
  uint64_t set_tid_size;
  uint64_t cgroup;
};

static inline long syscall_clone3(struct clone3_args *args) {
  return syscall(SYS_clone3, args, sizeof(*args));
}

static inline int syscall_pidfd_send_signal(int pidfd, int sig) {
  return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
}

static inline int syscall_execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags) {
  return (int)syscall(SYS_execveat, dirfd, path, argv, envp, flags);
}
