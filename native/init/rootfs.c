/*
 * The dyno's filesystem, built inside its own mount namespace:
 *   scratch (private tmpfs, so the writable layers die with the namespace: nothing to clean up; its
 *            size is the runtime's, from the dyno's size: src/runtime/sizes.ts scratchBytesFor)
 *   /        overlay: lower = stack (read-only), upper = scratch/upper
 *   /usr ... read-only binds of host directories (the "host" stack)
 *   /app     overlay: lower = the app directory, upper = scratch/app-upper (writes are thrown away)
 *   /proc    fresh procfs of the dyno's pid namespace, with the usual masked and read-only paths
 *   /dev     tmpfs with null, zero, full, random, urandom, tty, pts, shm, and console when stdin is a terminal
 *   /sys     read-only sysfs of the dyno's network namespace
 * then pivot_root, and the old root is detached.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "init.h"

#define PATH_BUF 4096

static int do_mount(struct init_error *e, enum dyno_step step, const char *src, const char *target,
                    const char *type, unsigned long flags, const char *data) {
  if (mount(src, target, type, flags, data) < 0) return fail(e, errno, step, "mount", target);
  return 0;
}

static int make_dir(struct init_error *e, enum dyno_step step, const char *path, mode_t mode) {
  if (mkdir(path, mode) < 0 && errno != EEXIST) return fail(e, errno, step, "mkdir", path);
  return 0;
}

static void join(char *out, const char *a, const char *b) {
  snprintf(out, PATH_BUF, "%s%s", a, b);
}

/* Bind a host path read-only (bind + remount: the kernel ignores MS_RDONLY on the first call). */
static int bind_read_only(struct init_error *e, enum dyno_step step, const char *src, const char *target,
                          unsigned long extra) {
  if (do_mount(e, step, src, target, NULL, MS_BIND | MS_REC, NULL) < 0) return -1;
  return do_mount(e, step, NULL, target, NULL,
                  MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | extra, NULL);
}

static int mount_overlay(struct init_error *e, enum dyno_step step, const char *lower, const char *upper,
                         const char *work, const char *target) {
  char opts[PATH_BUF * 3];
  int n = snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
  if (n < 0 || (size_t)n >= sizeof opts) return fail(e, ENAMETOOLONG, step, "mount", lower);
  return do_mount(e, step, "overlay", target, "overlay", MS_NOSUID | MS_NODEV, opts);
}

static int make_device(struct init_error *e, const char *root, const char *name, unsigned maj, unsigned min) {
  char path[PATH_BUF];
  snprintf(path, sizeof path, "%s/dev/%s", root, name);
  if (mknod(path, S_IFCHR | 0666, makedev(maj, min)) < 0) return fail(e, errno, DYNO_STEP_MOUNT_DEV, "mknod", path);
  /* mknod honours the umask; devices must be usable by the dyno user */
  if (chmod(path, 0666) < 0) return fail(e, errno, DYNO_STEP_MOUNT_DEV, "chmod", path);
  return 0;
}

static int make_symlink(struct init_error *e, const char *target, const char *root, const char *name) {
  char path[PATH_BUF];
  join(path, root, name);
  if (symlink(target, path) < 0 && errno != EEXIST) return fail(e, errno, DYNO_STEP_MOUNT_DEV, "symlink", path);
  return 0;
}

/*
 * An attached dyno's stdio is a terminal from outside (the daemon's pty, or the caller's own terminal with
 * `dyno run`). Its name is in the host's /dev/pts, not in the dyno's fresh devpts, so ttyname(3) and tty(1)
 * fail although isatty(0) holds. Bind it onto /dev/console like crun and LXC: glibc's ttyname then finds it
 * by scanning /dev (same st_dev/st_ino). The bind lives in our private mount namespace and dies with it.
 *
 * mount(2) refuses (EINVAL) to bind from fd 0 itself: its mount belongs to the host's mount namespace. So
 * reopen the terminal by its name, which resolves in this namespace's copy of the host mounts (we have not
 * pivoted yet), check that it is the same file, and bind from that O_PATH fd: no window for a swap.
 */
static int bind_console(const char *root, struct init_error *e) {
  char link[PATH_BUF], name[PATH_BUF], path[PATH_BUF];
  struct stat tty, found;
  if (!isatty(0)) return 0;
  if (fstat(0, &tty) < 0) return fail(e, errno, DYNO_STEP_MOUNT_DEV, "fstat", "stdin");
  join(link, root, "/proc/self/fd/0");
  ssize_t n = readlink(link, name, sizeof name - 1);
  if (n < 0) return fail(e, errno, DYNO_STEP_MOUNT_DEV, "readlink", link);
  name[n] = '\0';
  /* A terminal opened in another mount namespace may have no name here (or another file under it): the dyno
   * still gets it as stdio and controlling terminal, only without a name, as before. */
  if (name[0] != '/') return 0;
  int fd = open(name, O_PATH | O_CLOEXEC);
  if (fd < 0 && (errno == ENOENT || errno == ENOTDIR)) return 0;
  if (fd < 0) return fail(e, errno, DYNO_STEP_MOUNT_DEV, "open", name);
  if (fstat(fd, &found) < 0) {
    int saved = errno;
    close(fd);
    return fail(e, saved, DYNO_STEP_MOUNT_DEV, "fstat", name);
  }
  if (found.st_dev != tty.st_dev || found.st_ino != tty.st_ino || !S_ISCHR(found.st_mode)) {
    close(fd);
    return 0;
  }

  /* the mount point: an empty file on the dyno's /dev tmpfs (nothing else is there yet) */
  join(path, root, "/dev/console");
  int target = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (target < 0) {
    int saved = errno;
    close(fd);
    return fail(e, saved, DYNO_STEP_MOUNT_DEV, "open", path);
  }
  close(target);
  snprintf(link, sizeof link, "%s/proc/self/fd/%d", root, fd);
  int rc = do_mount(e, DYNO_STEP_MOUNT_DEV, link, path, NULL, MS_BIND, NULL);
  close(fd);
  return rc;
}

static int setup_dev(const char *root, struct init_error *e) {
  char path[PATH_BUF];
  join(path, root, "/dev");
  if (make_dir(e, DYNO_STEP_MOUNT_DEV, path, 0755) < 0) return -1;
  /* no MS_NODEV: the nodes below must work; MS_NOEXEC: nothing runs from /dev */
  if (do_mount(e, DYNO_STEP_MOUNT_DEV, "tmpfs", path, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k") < 0) return -1;
  static const struct { const char *name; unsigned maj, min; } devices[] = {
      {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
  };
  for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++)
    if (make_device(e, root, devices[i].name, devices[i].maj, devices[i].min) < 0) return -1;
  if (bind_console(root, e) < 0) return -1;

  join(path, root, "/dev/pts");
  if (make_dir(e, DYNO_STEP_MOUNT_DEV, path, 0755) < 0) return -1;
  if (do_mount(e, DYNO_STEP_MOUNT_DEV, "devpts", path, "devpts", MS_NOSUID | MS_NOEXEC,
               "newinstance,ptmxmode=0666,mode=0620") < 0)
    return -1;
  join(path, root, "/dev/shm");
  if (make_dir(e, DYNO_STEP_MOUNT_DEV, path, 01777) < 0) return -1;
  if (do_mount(e, DYNO_STEP_MOUNT_DEV, "shm", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=64m") < 0)
    return -1;
  if (make_symlink(e, "pts/ptmx", root, "/dev/ptmx") < 0 || make_symlink(e, "/proc/self/fd", root, "/dev/fd") < 0 ||
      make_symlink(e, "/proc/self/fd/0", root, "/dev/stdin") < 0 ||
      make_symlink(e, "/proc/self/fd/1", root, "/dev/stdout") < 0 ||
      make_symlink(e, "/proc/self/fd/2", root, "/dev/stderr") < 0)
    return -1;
  return 0;
}

static int pivot_into(const char *root, struct init_error *e) {
  if (chdir(root) < 0) return fail(e, errno, DYNO_STEP_PIVOT_ROOT, "chdir", root);
  /* pivot_root(".", ".") stacks the old root under the new one; detach it right away (crun, bwrap) */
  if (syscall(SYS_pivot_root, ".", ".") < 0) return fail(e, errno, DYNO_STEP_PIVOT_ROOT, "pivot_root", root);
  if (umount2(".", MNT_DETACH) < 0) return fail(e, errno, DYNO_STEP_PIVOT_ROOT, "umount2", "old root");
  if (chdir("/") < 0) return fail(e, errno, DYNO_STEP_PIVOT_ROOT, "chdir", "/");
  return 0;
}

/* Paths of /proc and /sys that leak host information or allow host changes (runc's defaults). */
static const char *const masked_files[] = {"/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                                           "/proc/timer_stats", "/proc/sched_debug"};
static const char *const masked_dirs[] = {"/proc/acpi", "/proc/scsi", "/sys/firmware"};
static const char *const read_only_paths[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                              "/proc/sysrq-trigger"};

static int mask_paths(struct init_error *e) {
  struct stat st;
  for (size_t i = 0; i < sizeof masked_files / sizeof masked_files[0]; i++) {
    if (stat(masked_files[i], &st) < 0) continue; /* absent on this kernel: nothing to hide */
    if (do_mount(e, DYNO_STEP_MASK_PATHS, "/dev/null", masked_files[i], NULL, MS_BIND, NULL) < 0) return -1;
  }
  for (size_t i = 0; i < sizeof masked_dirs / sizeof masked_dirs[0]; i++) {
    if (stat(masked_dirs[i], &st) < 0) continue;
    if (do_mount(e, DYNO_STEP_MASK_PATHS, "tmpfs", masked_dirs[i], "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                 "size=0") < 0)
      return -1;
  }
  for (size_t i = 0; i < sizeof read_only_paths / sizeof read_only_paths[0]; i++) {
    if (stat(read_only_paths[i], &st) < 0) continue;
    if (bind_read_only(e, DYNO_STEP_MASK_PATHS, read_only_paths[i], read_only_paths[i], MS_NOEXEC) < 0) return -1;
  }
  return 0;
}

int setup_rootfs(const struct dyno_config *cfg, struct init_error *e) {
  char root[PATH_BUF], upper[PATH_BUF], work[PATH_BUF], path[PATH_BUF];
  const char *s = cfg->scratch;

  /* Nothing we mount may propagate back to the host. */
  if (do_mount(e, DYNO_STEP_MOUNT_ROOT, NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return -1;

  /*
   * Mounted by us, from inside the dyno's cgroup, but that is not what charges it: tmpfs pages are
   * charged to the memory cgroup of the process that writes them, the app's, so memory.max bounds
   * the layer along with the rest of the dyno's memory. Full, it answers ENOSPC to the writer and
   * nothing else. nr_inodes: one per page of size, the kernel's own default ratio (half of RAM's
   * pages for a half-of-RAM tmpfs), so a million empty files cannot pin unbounded inode memory.
   */
  char tmpfs_opts[96];
  snprintf(tmpfs_opts, sizeof tmpfs_opts, "mode=755,size=%llu,nr_inodes=%llu", cfg->scratch_bytes,
           cfg->scratch_bytes / 4096);
  if (do_mount(e, DYNO_STEP_MOUNT_ROOT, "tmpfs", s, "tmpfs", MS_NOSUID | MS_NODEV, tmpfs_opts) < 0) return -1;
  static const char *const scratch_dirs[] = {"/upper", "/work", "/root", "/app-upper", "/app-work"};
  for (size_t i = 0; i < sizeof scratch_dirs / sizeof scratch_dirs[0]; i++) {
    join(path, s, scratch_dirs[i]);
    if (make_dir(e, DYNO_STEP_MOUNT_ROOT, path, 0755) < 0) return -1;
  }

  join(root, s, "/root");
  join(upper, s, "/upper");
  join(work, s, "/work");
  if (mount_overlay(e, DYNO_STEP_MOUNT_ROOT, cfg->stack, upper, work, root) < 0) return -1;

  for (int i = 0; i < cfg->nbinds; i++) {
    join(path, root, cfg->binds[i].target);
    if (make_dir(e, DYNO_STEP_MOUNT_STACK, path, 0755) < 0) return -1;
    if (bind_read_only(e, DYNO_STEP_MOUNT_STACK, cfg->binds[i].source, path, 0) < 0) return -1;
  }

  /* /app: writable for the dyno user, changes thrown away with the scratch tmpfs */
  join(upper, s, "/app-upper");
  join(work, s, "/app-work");
  if (chown(upper, cfg->uid, cfg->gid) < 0) return fail(e, errno, DYNO_STEP_MOUNT_APP, "chown", upper);
  join(path, root, "/app");
  if (make_dir(e, DYNO_STEP_MOUNT_APP, path, 0755) < 0) return -1;
  if (mount_overlay(e, DYNO_STEP_MOUNT_APP, cfg->app_dir, upper, work, path) < 0) return -1;

  join(path, root, "/proc");
  if (make_dir(e, DYNO_STEP_MOUNT_PROC, path, 0555) < 0) return -1;
  if (do_mount(e, DYNO_STEP_MOUNT_PROC, "proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) return -1;

  join(path, root, "/sys");
  if (make_dir(e, DYNO_STEP_MOUNT_SYS, path, 0555) < 0) return -1;
  if (do_mount(e, DYNO_STEP_MOUNT_SYS, "sysfs", path, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    return -1;

  if (setup_dev(root, e) < 0) return -1;

  join(path, root, "/tmp");
  if (make_dir(e, DYNO_STEP_MOUNT_ROOT, path, 01777) < 0) return -1;
  if (chmod(path, 01777) < 0) return fail(e, errno, DYNO_STEP_MOUNT_ROOT, "chmod", path);

  if (pivot_into(root, e) < 0) return -1;
  return mask_paths(e);
}
