/*
 * Start the app as PID 2: drop to the dyno user, apply seccomp last, then exec Heroku's way:
 * bash sources the .sh files of /app/.profile.d and /app/.profile (which may override config vars), then runs
 * the command. Exec failures come back over a close-on-exec pipe: EOF means the exec succeeded.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "init.h"

/* $0 is the command (argv mode) and "$@" its arguments; in shell mode the command text follows. */
static const char profile_prelude[] =
    "for __f in /app/.profile.d/*.sh; do [ -r \"$__f\" ] && . \"$__f\"; done; unset __f; "
    "[ -r /app/.profile ] && . /app/.profile; ";

static const char *env_value(const struct dyno_config *cfg, const char *name) {
  size_t len = strlen(name);
  for (int i = 0; i < cfg->envc; i++)
    if (!strncmp(cfg->env[i], name, len) && cfg->env[i][len] == '=') return cfg->env[i] + len + 1;
  return NULL;
}

/* Resolve a command name against PATH the way execvp would, so a missing or non-executable
 * command is reported as ENOENT/EACCES from the exec step instead of bash's exit status 127. */
static int resolve_command(const struct dyno_config *cfg, const char *name, char *out, size_t size,
                           struct init_error *e) {
  if (strchr(name, '/')) {
    if (access(name, X_OK) < 0) return fail(e, errno, DYNO_STEP_EXEC, "execve", name);
    snprintf(out, size, "%s", name);
    return 0;
  }
  const char *path = env_value(cfg, "PATH");
  if (!path) path = "/usr/local/bin:/usr/bin:/bin";
  int saw_eacces = 0;
  while (*path) {
    const char *colon = strchr(path, ':');
    size_t dirlen = colon ? (size_t)(colon - path) : strlen(path);
    snprintf(out, size, "%.*s/%s", (int)dirlen, dirlen ? path : ".", name);
    if (access(out, X_OK) == 0) {
      struct stat st;
      if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) return 0;
    } else if (errno == EACCES) {
      saw_eacces = 1;
    }
    path += dirlen + (colon ? 1 : 0);
  }
  return fail(e, saw_eacces ? EACCES : ENOENT, DYNO_STEP_EXEC, "execve", name);
}

static void report_and_exit(int pipe_fd, const struct init_error *e) {
  ssize_t unused = write(pipe_fd, e, sizeof *e);
  (void)unused;
  _exit(127);
}

static void exec_app(const struct dyno_config *cfg, int pipe_fd) {
  struct init_error e;
  static char resolved[4096];
  static char script[sizeof profile_prelude + 64 * 1024];
  static char *argv[MAX_ARGS + 8];
  sigset_t none;

  if (setsid() < 0) report_and_exit(pipe_fd, (fail(&e, errno, DYNO_STEP_IDENTITY, "setsid", NULL), &e));
  /* An attached one-off dyno gets a terminal as stdin: make it ours, so Ctrl-C and job control work.
   * EPERM: it is already another session's controlling terminal (`dyno run --no-tty` passes on the
   * caller's own terminal). It stays the caller's: the dyno uses it as plain stdio, and Ctrl-C reaches
   * the caller. */
  if (isatty(0) && ioctl(0, TIOCSCTTY, 0) < 0 && errno != EPERM)
    report_and_exit(pipe_fd, (fail(&e, errno, DYNO_STEP_IDENTITY, "ioctl", "TIOCSCTTY"), &e));
  if (apply_rlimits(cfg, &e) < 0 || become_dyno_user(cfg, &e) < 0) report_and_exit(pipe_fd, &e);
  if (chdir("/app") < 0) report_and_exit(pipe_fd, (fail(&e, errno, DYNO_STEP_EXEC, "chdir", "/app"), &e));

  /* Nothing from the parent but 0, 1, 2 (and the exec-status pipe, which is close-on-exec). */
  if (pipe_fd > 3) syscall(SYS_close_range, 3, pipe_fd - 1, 0);
  syscall(SYS_close_range, pipe_fd + 1, ~0u, 0);

  int have_bash = access("/bin/bash", X_OK) == 0;
  /* With nothing to source, an argv command is exec'd directly: same result, no shell start-up. */
  int have_profile = access("/app/.profile", F_OK) == 0 || access("/app/.profile.d", F_OK) == 0;
  if (!cfg->shell && !have_profile) have_bash = 0;
  int argc = 0;
  if (cfg->shell) {
    snprintf(script, sizeof script, "%s%s", have_bash ? profile_prelude : "", cfg->argv[0]);
    argv[argc++] = have_bash ? "bash" : "sh";
    argv[argc++] = "-c";
    argv[argc++] = script;
  } else {
    if (resolve_command(cfg, cfg->argv[0], resolved, sizeof resolved, &e) < 0) report_and_exit(pipe_fd, &e);
    if (have_bash) {
      snprintf(script, sizeof script, "%sexec \"$0\" \"$@\"", profile_prelude);
      argv[argc++] = "bash";
      argv[argc++] = "-c";
      argv[argc++] = script;
      argv[argc++] = cfg->argv[0];
    } else {
      argv[argc++] = cfg->argv[0];
    }
    for (int i = 1; i < cfg->argc; i++) argv[argc++] = cfg->argv[i];
  }
  argv[argc] = NULL;
  const char *program = have_bash ? "/bin/bash" : (cfg->shell ? "/bin/sh" : resolved);

  if (install_seccomp(&e) < 0) report_and_exit(pipe_fd, &e);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(program, argv, cfg->env);
  report_and_exit(pipe_fd, (fail(&e, errno, DYNO_STEP_EXEC, "execve", program), &e));
}

int start_app(const struct dyno_config *cfg, struct init_error *e) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) return fail(e, errno, DYNO_STEP_EXEC, "pipe2", NULL);
  pid_t pid = fork();
  if (pid < 0) {
    int saved = errno;
    close(fds[0]);
    close(fds[1]);
    return fail(e, saved, DYNO_STEP_EXEC, "fork", NULL);
  }
  if (pid == 0) {
    close(fds[0]);
    exec_app(cfg, fds[1]);
  }
  close(fds[1]);
  ssize_t n;
  do {
    n = read(fds[0], e, sizeof *e);
  } while (n < 0 && errno == EINTR);
  close(fds[0]);
  if (n == 0) return pid; /* EOF: execve closed the pipe */
  waitpid(pid, NULL, 0);
  if (n != (ssize_t)sizeof *e) return fail(e, EIO, DYNO_STEP_EXEC, "read", "short exec-status message");
  return -1;
}
