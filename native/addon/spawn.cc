#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "../common/dyno_table.h"
#include "../common/protocol.h"
#include "clone_vm.h"
#include "sys.h"

// Runs in the child between clone3 and execveat. Node is multi-threaded, so only raw,
// async-signal-safe system calls are allowed here: no allocation, no locks, no libc state.
[[noreturn]] static void ChildExec(const SpawnRequest &req, struct dyno_status *failure, char *const argv[],
                                   char *const envp[]) {
  int sources[5] = {req.stdio[0], req.stdio[1], req.stdio[2], req.status_fd, req.netlink_fd};
  int moved[5];
  int count = req.netlink_fd >= 0 ? 5 : 4;
  // Move every source above the targets first, so a source that is itself 0..4 is not clobbered.
  for (int i = 0; i < count; i++) {
    moved[i] = fcntl(sources[i], F_DUPFD_CLOEXEC, 10);
    if (moved[i] < 0) {
      syscall(SYS_exit_group, 126);
    }
  }
  for (int i = 0; i < count; i++) {
    if (dup3(moved[i], i, 0) < 0) syscall(SYS_exit_group, 126);
  }
  syscall_execveat(req.helper_fd, "", argv, envp, AT_EMPTY_PATH);
  failure->err = errno;
  (void)!write(DYNO_STATUS_FD, failure, sizeof *failure);
  syscall(SYS_exit_group, 127);
  __builtin_unreachable();
}

struct ChildContext {
  const SpawnRequest *req;
  struct dyno_status *failure;
  char *const *argv;
  char *const *envp;
};

[[maybe_unused]] static void ChildEntry(void *p) {
  ChildContext *c = static_cast<ChildContext *>(p);
  ChildExec(*c->req, c->failure, c->argv, c->envp);
}

#if defined(MANIFOLD_HAVE_CLONE_VM)
// The child's stack while it shares our memory: one per spawning thread, which sleeps
// (CLONE_VFORK) until its child has exec'd or exited.
alignas(64) static thread_local char child_stack[64 * 1024];
#endif

SpawnResult CloneDyno(const SpawnRequest &req) {
  SpawnResult result = {-1, -1, 0, nullptr};
  // Everything the child needs is prepared before clone3.
  static char arg0[] = "dyno-init";
  char *const argv[] = {arg0, nullptr};
  char *const envp[] = {nullptr};
  struct dyno_status failure;
  memset(&failure, 0, sizeof failure);
  failure.kind = DYNO_STATUS_ERROR;
  strcpy(failure.step, dyno_step_name(DYNO_STEP_EXEC_INIT));
  strcpy(failure.syscall, "execveat");
  strcpy(failure.detail, "dyno-init");

  int pidfd = -1;
  struct clone3_args args;
  memset(&args, 0, sizeof args);
  args.flags = CLONE_PIDFD | CLONE_CLEAR_SIGHAND | req.namespaces;
  args.pidfd = (uint64_t)(uintptr_t)&pidfd;
  args.exit_signal = SIGCHLD;
  if (req.cgroup_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = (uint64_t)req.cgroup_fd;
  }

  // Block every signal so no Node/libuv handler runs in the child before exec (libuv does the same).
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
#if defined(MANIFOLD_HAVE_CLONE_VM)
  // No copy of Node's page tables and no copy-on-write storm in its heap: the child borrows our
  // memory until execveat (CLONE_VFORK keeps this thread asleep until then).
  ChildContext ctx = {&req, &failure, argv, envp};
  args.flags |= CLONE_VM | CLONE_VFORK;
  args.stack = (uint64_t)(uintptr_t)child_stack;
  args.stack_size = sizeof child_stack;
  long pid = manifold_clone3_vm(&args, sizeof args, ChildEntry, &ctx);
  int saved = pid < 0 ? (int)-pid : 0;
#else
  long pid = syscall_clone3(&args);
  if (pid == 0) ChildExec(req, &failure, argv, envp);
  int saved = errno;
#endif
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    result.err = saved;
    result.syscall = "clone3";
    return result;
  }
  result.pid = (pid_t)pid;
  result.pidfd = pidfd;
  return result;
}
