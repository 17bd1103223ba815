/*
 * The default seccomp filter: deny (EPERM) what Docker's default profile denies to an unprivileged
 * container: mounting, namespaces, kernel modules, kexec, bpf, ptrace, keyrings, clock changes,
 * perf, userfaultfd, io_uring, ... Everything else is allowed. Foreign architectures and x32 are
 * refused. clone with namespace flags gets EPERM; clone3 gets ENOSYS so libc falls back to clone,
 * whose flags the filter can inspect (clone3 passes them in memory, out of seccomp's reach).
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include "init.h"

#define X32_SYSCALL_BIT 0x40000000u
#define NAMESPACE_FLAGS \
  (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP)

static const int denied[] = {
    SYS_acct, SYS_add_key, SYS_bpf, SYS_clock_adjtime, SYS_clock_settime, SYS_create_module,
    SYS_delete_module, SYS_finit_module, SYS_get_kernel_syms, SYS_init_module, SYS_ioperm, SYS_iopl, SYS_kcmp,
    SYS_kexec_file_load, SYS_kexec_load, SYS_keyctl, SYS_lookup_dcookie, SYS_mount, SYS_name_to_handle_at,
    SYS_nfsservctl, SYS_open_by_handle_at, SYS_perf_event_open, SYS_pivot_root, SYS_process_vm_readv,
    SYS_process_vm_writev, SYS_ptrace, SYS_query_module, SYS_quotactl, SYS_reboot, SYS_request_key, SYS_setns,
    SYS_settimeofday, SYS_swapon, SYS_swapoff, SYS_sysfs, SYS__sysctl, SYS_umount2, SYS_unshare, SYS_uselib,
    SYS_userfaultfd, SYS_ustat, SYS_syslog, SYS_vhangup, SYS_move_pages, SYS_mbind, SYS_set_mempolicy,
    SYS_get_mempolicy,
#ifdef SYS_fsopen
    SYS_fsopen, SYS_fsconfig, SYS_fsmount, SYS_fspick, SYS_move_mount, SYS_open_tree,
#endif
#ifdef SYS_mount_setattr
    SYS_mount_setattr,
#endif
#ifdef SYS_io_uring_setup
    SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
#endif
#ifdef SYS_quotactl_fd
    SYS_quotactl_fd,
#endif
};

#define NDENIED (sizeof denied / sizeof denied[0])
#define RET(action) BPF_STMT(BPF_RET | BPF_K, (action))

int install_seccomp(struct init_error *e) {
  /* header (5) + clone check (4) + clone3 (2) + one jump per denied call + allow + deny */
  struct sock_filter prog[16 + NDENIED];
  size_t n = 0;

  prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
  prog[n++] = (struct sock_filter)RET(SECCOMP_RET_KILL_PROCESS);
  prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
  prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1);
  prog[n++] = (struct sock_filter)RET(SECCOMP_RET_ERRNO | EPERM);

  /* clone: inspect the low 32 bits of the flags argument */
  prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3);
  prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
  prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NAMESPACE_FLAGS, 0, 1 + 2 + NDENIED);
  prog[n++] = (struct sock_filter)RET(SECCOMP_RET_ERRNO | EPERM);

  prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1);
  prog[n++] = (struct sock_filter)RET(SECCOMP_RET_ERRNO | ENOSYS);

  /* each denied syscall jumps to the final EPERM; the fall-through is ALLOW */
  for (size_t i = 0; i < NDENIED; i++) {
    unsigned char to_deny = (unsigned char)(NDENIED - i);
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)denied[i], to_deny, 0);
  }
  prog[n++] = (struct sock_filter)RET(SECCOMP_RET_ALLOW);
  prog[n++] = (struct sock_filter)RET(SECCOMP_RET_ERRNO | EPERM);

  struct sock_fprog fprog = {(unsigned short)n, prog};
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) < 0)
    return fail(e, errno, DYNO_STEP_SECCOMP, "prctl", "PR_SET_SECCOMP");
  return 0;
}
