/*
 * Names the native side shares with TypeScript: the steps a native failure names (dyno-init's
 * setup steps and the addon's own) and the stop signals dyno-init forwards to the dyno.
 *
 * C and C++ can only name a step through enum dyno_step, so nothing outside this table reaches
 * JS. src/runtime/native-table.ts mirrors both lists for its types; the addon exports them
 * (tables()) and native() refuses an addon whose lists differ, so neither side drifts alone.
 */
#ifndef MANIFOLD_DYNO_TABLE_H
#define MANIFOLD_DYNO_TABLE_H

#include <signal.h>

/* X(identifier, name): dyno-init's setup steps in the order it runs them, then the addon's. */
#define DYNO_STEPS(X)                   \
  X(INIT, "init")                       \
  X(CONFIG, "config")                   \
  X(CGROUP_NAMESPACE, "cgroup-namespace") \
  X(MOUNT_ROOT, "mount-root")           \
  X(MOUNT_STACK, "mount-stack")         \
  X(MOUNT_APP, "mount-app")             \
  X(MOUNT_PROC, "mount-proc")           \
  X(MOUNT_SYS, "mount-sys")             \
  X(MOUNT_DEV, "mount-dev")             \
  X(MASK_PATHS, "mask-paths")           \
  X(PIVOT_ROOT, "pivot-root")           \
  X(HOSTNAME, "hostname")               \
  X(NETWORK, "network")                 \
  X(RLIMITS, "rlimits")                 \
  X(IDENTITY, "identity")               \
  X(SECCOMP, "seccomp")                 \
  X(EXEC, "exec")                       \
  X(LOAD_HELPER, "load-helper")         \
  X(SPAWN, "spawn")                     \
  X(EXEC_INIT, "exec-init")             \
  X(STATUS, "status")                   \
  X(SIGNAL, "signal")                   \
  X(PIPE, "pipe")                       \
  X(PTY, "pty")                         \
  X(WATCH, "watch")                     \
  X(PEER_CREDENTIALS, "peer-credentials") \
  X(LOCK, "lock")

enum dyno_step {
#define DYNO_STEP_ENUM(id, name) DYNO_STEP_##id,
  DYNO_STEPS(DYNO_STEP_ENUM)
#undef DYNO_STEP_ENUM
  DYNO_STEP_COUNT
};

static const char *const dyno_step_names[DYNO_STEP_COUNT] = {
#define DYNO_STEP_NAME(id, name) name,
  DYNO_STEPS(DYNO_STEP_NAME)
#undef DYNO_STEP_NAME
};

static inline const char *dyno_step_name(enum dyno_step step) {
  return (unsigned)step < DYNO_STEP_COUNT ? dyno_step_names[step] : "unknown";
}

/*
 * X(signal): what dyno-init relays to every process of the dyno, so what a stop may send (Heroku
 * sends SIGTERM; nginx wants SIGQUIT). Anything else would reach dyno-init alone: as PID 1 of its
 * namespace it ignores unhandled signals, and the app would never see it.
 */
#define DYNO_STOP_SIGNALS(X) X(SIGTERM) X(SIGINT) X(SIGHUP) X(SIGQUIT) X(SIGUSR1) X(SIGUSR2)

struct dyno_stop_signal {
  int number;
  const char *name;
};

static const struct dyno_stop_signal dyno_stop_signals[] = {
#define DYNO_STOP_SIGNAL_ENTRY(sig) {sig, #sig},
  DYNO_STOP_SIGNALS(DYNO_STOP_SIGNAL_ENTRY)
#undef DYNO_STOP_SIGNAL_ENTRY
};

#define DYNO_STOP_SIGNAL_COUNT (sizeof dyno_stop_signals / sizeof dyno_stop_signals[0])

#endif
