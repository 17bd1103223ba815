/*
 * Who the app is: an unprivileged uid/gid, no supplementary groups, no capabilities (bounding,
 * permitted, effective, inheritable and ambient sets all empty), no_new_privs, sane rlimits.
 * Order matters: dropping the bounding set needs CAP_SETPCAP, so it happens while still root.
 */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "init.h"

static int last_capability(void) {
  FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "r");
  int last = 40; /* CAP_CHECKPOINT_RESTORE, if procfs is unreadable */
  if (f) {
    if (fscanf(f, "%d", &last) != 1) last = 40;
    fclose(f);
  }
  return last;
}

static int set_capabilities(uint32_t keep_mask, struct init_error *e) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  data[0].effective = data[0].permitted = keep_mask;
  if (syscall(SYS_capset, &hdr, data) < 0) return fail(e, errno, DYNO_STEP_IDENTITY, "capset", NULL);
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return fail(e, errno, DYNO_STEP_IDENTITY, "prctl", "PR_CAP_AMBIENT_CLEAR_ALL");
  return 0;
}

static int drop_bounding_set(int keep_cap, struct init_error *e) {
  int last = last_capability();
  for (int cap = 0; cap <= last; cap++) {
    if (cap == keep_cap) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
      return fail(e, errno, DYNO_STEP_IDENTITY, "prctl", "PR_CAPBSET_DROP");
  }
  return 0;
}

int apply_rlimits(const struct dyno_config *cfg, struct init_error *e) {
  struct rlimit nofile = {cfg->nofile, cfg->nofile};
  struct rlimit core = {0, 0};
  if (setrlimit(RLIMIT_NOFILE, &nofile) < 0) return fail(e, errno, DYNO_STEP_RLIMITS, "setrlimit", "RLIMIT_NOFILE");
  if (setrlimit(RLIMIT_CORE, &core) < 0) return fail(e, errno, DYNO_STEP_RLIMITS, "setrlimit", "RLIMIT_CORE");
  return 0;
}

int become_dyno_user(const struct dyno_config *cfg, struct init_error *e) {
  if (drop_bounding_set(-1, e) < 0) return -1;
  /* The helper is single-threaded, so libc's set*id wrappers are safe here. */
  if (setgroups(0, NULL) < 0) return fail(e, errno, DYNO_STEP_IDENTITY, "setgroups", NULL);
  if (setresgid(cfg->gid, cfg->gid, cfg->gid) < 0) return fail(e, errno, DYNO_STEP_IDENTITY, "setresgid", NULL);
  /* Without PR_SET_KEEPCAPS, leaving uid 0 clears permitted and effective; inheritable stays: clear it. */
  if (setresuid(cfg->uid, cfg->uid, cfg->uid) < 0) return fail(e, errno, DYNO_STEP_IDENTITY, "setresuid", NULL);
  if (set_capabilities(0, e) < 0) return -1;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return fail(e, errno, DYNO_STEP_IDENTITY, "prctl", "PR_SET_NO_NEW_PRIVS");
  return 0;
}

/* PID 1 stays root inside the dyno's namespaces but keeps only CAP_KILL: it must signal the app's uid. */
int restrict_init(struct init_error *e) {
  if (drop_bounding_set(CAP_KILL, e) < 0) return -1;
  if (set_capabilities(1u << CAP_KILL, e) < 0) return -1;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return fail(e, errno, DYNO_STEP_INIT, "prctl", "PR_SET_NO_NEW_PRIVS");
  return 0;
}
