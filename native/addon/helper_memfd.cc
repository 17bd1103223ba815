#include "helper_memfd.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

static int Fail(int fd, const char *syscall, const char **failed_syscall) {
  int err = errno;
  if (fd >= 0) close(fd);
  *failed_syscall = syscall;
  return -err;
}

int LoadSealedHelper(const char *path, const char **failed_syscall) {
  int src = open(path, O_RDONLY | O_CLOEXEC);
  if (src < 0) return Fail(-1, "open", failed_syscall);
  struct stat st;
  if (fstat(src, &st) < 0) {
    int rc = Fail(-1, "fstat", failed_syscall);
    close(src);
    return rc;
  }
  // MFD_EXEC (Linux 6.3+) keeps the memfd executable under vm.memfd_noexec; older kernels reject it.
  int fd = memfd_create("dyno-init", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (fd < 0 && errno == EINVAL) fd = memfd_create("dyno-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) {
    int rc = Fail(-1, "memfd_create", failed_syscall);
    close(src);
    return rc;
  }
  off_t offset = 0;
  while (offset < st.st_size) {
    ssize_t n = sendfile(fd, src, &offset, (size_t)(st.st_size - offset));
    if (n <= 0) {
      if (n == 0) errno = EIO;
      int rc = Fail(fd, "sendfile", failed_syscall);
      close(src);
      return rc;
    }
  }
  close(src);
  if (fchmod(fd, 0555) < 0) return Fail(fd, "fchmod", failed_syscall);
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
    return Fail(fd, "fcntl", failed_syscall);
  return fd;
}
