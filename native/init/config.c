/* Parse the config message: NUL-terminated "key=value" records (see common/protocol.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "init.h"

static char config_buf[DYNO_CONFIG_MAX];

static int parse_ulong(const char *v, unsigned long *out) {
  char *end;
  errno = 0;
  unsigned long n = strtoul(v, &end, 10);
  if (errno || *v == '\0' || *end != '\0') return -1;
  *out = n;
  return 0;
}

static int apply_record(struct dyno_config *cfg, char *rec, struct init_error *e) {
  char *eq = strchr(rec, '=');
  if (!eq) return fail(e, EINVAL, DYNO_STEP_CONFIG, "read", rec);
  *eq = '\0';
  const char *key = rec;
  char *val = eq + 1;
  unsigned long n;

  if (!strcmp(key, "arg")) {
    if (cfg->argc >= MAX_ARGS) return fail(e, E2BIG, DYNO_STEP_CONFIG, "read", "too many arguments");
    cfg->argv[cfg->argc++] = val;
  } else if (!strcmp(key, "env")) {
    if (cfg->envc >= MAX_ENV) return fail(e, E2BIG, DYNO_STEP_CONFIG, "read", "too many environment variables");
    cfg->env[cfg->envc++] = val;
  } else if (!strcmp(key, "bind")) {
    /* "source:target"; host paths given by the runtime never contain ':' */
    char *colon = strchr(val, ':');
    if (!colon || cfg->nbinds >= MAX_BINDS) return fail(e, EINVAL, DYNO_STEP_CONFIG, "read", "bad bind record");
    *colon = '\0';
    cfg->binds[cfg->nbinds].source = val;
    cfg->binds[cfg->nbinds].target = colon + 1;
    cfg->nbinds++;
  } else if (!strcmp(key, "shell")) {
    cfg->shell = !strcmp(val, "1");
  } else if (!strcmp(key, "hostname")) {
    cfg->hostname = val;
  } else if (!strcmp(key, "stack")) {
    cfg->stack = val;
  } else if (!strcmp(key, "app")) {
    cfg->app_dir = val;
  } else if (!strcmp(key, "scratch")) {
    cfg->scratch = val;
  } else if (!strcmp(key, "scratch_size")) {
    /* bytes; 0 would mean an unbounded tmpfs, and under a page it rounds to nothing useful */
    if (parse_ulong(val, &n) < 0 || n < 4096) return fail(e, EINVAL, DYNO_STEP_CONFIG, "read", "scratch_size");
    cfg->scratch_bytes = n;
  } else if (!strcmp(key, "net")) {
    cfg->net = val;
  } else if (!strcmp(key, "veth")) {
    cfg->veth = val;
  } else if (!strcmp(key, "address")) {
    /* "a.b.c.d/len" */
    char *slash = strchr(val, '/');
    if (!slash || parse_ulong(slash + 1, &n) < 0 || n > 32) return fail(e, EINVAL, DYNO_STEP_CONFIG, "read", "address");
    *slash = '\0';
    cfg->address = val;
    cfg->prefix_len = (int)n;
  } else if (!strcmp(key, "gateway")) {
    cfg->gateway = val;
  } else if (!strcmp(key, "uid") || !strcmp(key, "gid") || !strcmp(key, "nofile") ||
             !strcmp(key, "die_with_parent") || !strcmp(key, "bridge_ifindex") || !strcmp(key, "veth_ifindex")) {
    if (parse_ulong(val, &n) < 0) return fail(e, EINVAL, DYNO_STEP_CONFIG, "read", key);
    if (!strcmp(key, "uid")) cfg->uid = (uid_t)n;
    else if (!strcmp(key, "gid")) cfg->gid = (gid_t)n;
    else if (!strcmp(key, "nofile")) cfg->nofile = n;
    else if (!strcmp(key, "bridge_ifindex")) cfg->bridge_ifindex = (int)n;
    else if (!strcmp(key, "veth_ifindex")) cfg->veth_ifindex = (int)(n & 0x7fffffff);
    else cfg->die_with_parent = (int)n;
  } else {
    return fail(e, EINVAL, DYNO_STEP_CONFIG, "read", key);
  }
  return 0;
}

int read_config(int fd, struct dyno_config *cfg, struct init_error *e) {
  ssize_t len;
  do {
    len = recv(fd, config_buf, sizeof config_buf - 1, 0);
  } while (len < 0 && errno == EINTR);
  if (len < 0) return fail(e, errno, DYNO_STEP_CONFIG, "recv", "status channel");
  if (len == 0) return fail(e, EPIPE, DYNO_STEP_CONFIG, "recv", "no config from the parent");
  config_buf[len] = '\0';

  memset(cfg, 0, sizeof *cfg);
  cfg->nofile = 10000;
  cfg->die_with_parent = 1;
  cfg->net = "none";
  cfg->scratch_bytes = 512ull << 20; /* the runtime always sends it; this is standard-1x's quota */
  for (char *p = config_buf; p < config_buf + len;) {
    size_t reclen = strlen(p); /* before apply_record splits the record at '=' */
    if (reclen > 0 && apply_record(cfg, p, e) < 0) return -1;
    p += reclen + 1;
  }
  cfg->argv[cfg->argc] = NULL;
  cfg->env[cfg->envc] = NULL;

  if (cfg->argc == 0) return fail(e, EINVAL, DYNO_STEP_CONFIG, "read", "no command");
  if (!cfg->stack || !cfg->app_dir || !cfg->scratch || !cfg->hostname)
    return fail(e, EINVAL, DYNO_STEP_CONFIG, "read", "stack, app, scratch and hostname are required");
  /* Bounded so every path rootfs.c joins fits its PATH_MAX buffers. */
  const char *paths[] = {cfg->stack, cfg->app_dir, cfg->scratch, cfg->hostname};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
    if (strlen(paths[i]) > 1024) return fail(e, ENAMETOOLONG, DYNO_STEP_CONFIG, "read", paths[i]);
  for (int i = 0; i < cfg->nbinds; i++)
    if (strlen(cfg->binds[i].source) > 1024 || strlen(cfg->binds[i].target) > 256)
      return fail(e, ENAMETOOLONG, DYNO_STEP_CONFIG, "read", cfg->binds[i].source);
  if (!strcmp(cfg->net, "bridge") && (!cfg->veth || !cfg->address || !cfg->gateway || cfg->bridge_ifindex <= 0))
    return fail(e, EINVAL, DYNO_STEP_CONFIG, "read", "bridge network needs veth, address, gateway and bridge_ifindex");
  if (strcmp(cfg->net, "bridge") && strcmp(cfg->net, "none")) return fail(e, EINVAL, DYNO_STEP_CONFIG, "read", cfg->net);
  if (cfg->uid == 0 || cfg->gid == 0) return fail(e, EPERM, DYNO_STEP_CONFIG, "read", "a dyno never runs as uid or gid 0");
  return 0;
}
