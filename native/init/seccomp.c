/*
 * The default seccomp filter: deny (EPERM) what Docker's default profile denies to an unprivileged
 * container: mounting, namespaces, kernel modules, kexec, bpf, ptrace, keyrings, clock changes,
 * perf, userfaultfd, io_uring, ... Everything else is allowed. Foreign architectures and x32 are
 * refused, so socketcall(2) (i386's multiplexer, whose arguments live in memory) never reaches us.
 * clone with namespace flags gets EPERM; clone3 gets ENOSYS so libc falls back to clone, whose
 * flags the filter can inspect (clone3 passes them in memory, out of seccomp's reach).
 *
 * socket(2) and socketpair(2) are limited to the families an app uses: AF_UNIX, AF_INET, AF_INET6,
 * and AF_NETLINK for NETLINK_ROUTE only (glibc's getaddrinfo(AI_ADDRCONFIG) and if_nameindex, ip(8)).
 * Every other family (AF_VSOCK reaches the hypervisor, AF_PACKET, AF_ALG, AF_KEY, AF_TIPC, AF_CAN,
 * AF_XDP...: kernel attack surface a web app never needs) gets EAFNOSUPPORT, what the kernel says
 * of a family it lacks, so programs take their "not supported" path; other netlink protocols
 * (NETLINK_AUDIT, KOBJECT_UEVENT, SOCK_DIAG...) get EPROTONOSUPPORT, the kernel's answer for an
 * unknown one (libaudit, for one, then carries on without audit).
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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
#define NFAMILIES (sizeof socket_families / sizeof socket_families[0])
#define PROG_MAX (32 + NFAMILIES + NDENIED)
/* the low 32 bits of argument i (x86_64 is little-endian); the kernel reads these int arguments from them alone */
#define ARG_LOW(i) (offsetof(struct seccomp_data, args[i]))

static const unsigned socket_families[] = {AF_UNIX, AF_INET, AF_INET6};

/*
 * A forward-only BPF program. Jumps to the shared ALLOW and EPERM returns at its end are patched
 * once those are placed, and local skips are measured, not counted by hand, so adding a rule
 * cannot leave an offset pointing at the wrong instruction.
 */
enum label { TO_ALLOW, TO_EPERM };

struct builder {
  struct sock_filter insn[PROG_MAX];
  size_t n;
  struct {
    size_t at;
    enum label to;
    int on_true;
  } fix[PROG_MAX];
  size_t nfix;
};

static void stmt(struct builder *b, unsigned short code, unsigned k) {
  b->insn[b->n++] = (struct sock_filter)BPF_STMT(code, k);
}

static void load(struct builder *b, size_t offset) {
  stmt(b, BPF_LD | BPF_W | BPF_ABS, (unsigned)offset);
}

static void ret(struct builder *b, unsigned action) {
  stmt(b, BPF_RET | BPF_K, action);
}

/* Local branch: if (A op k) skip jt instructions, else skip jf. Returns its index (see skip_to_here). */
static size_t branch(struct builder *b, unsigned short op, unsigned k, unsigned char jt, unsigned char jf) {
  b->insn[b->n] = (struct sock_filter)BPF_JUMP(BPF_JMP | op, k, jt, jf);
  return b->n++;
}

/* Points the false branch of the jump at index `at` to the next instruction emitted. */
static void skip_to_here(struct builder *b, size_t at) {
  b->insn[at].jf = (unsigned char)(b->n - at - 1);
}

/* if ((A op k) == on_true) goto label; otherwise fall through */
static void jump_to(struct builder *b, unsigned short op, unsigned k, enum label to, int on_true) {
  b->fix[b->nfix].at = branch(b, op, k, 0, 0);
  b->fix[b->nfix].to = to;
  b->fix[b->nfix].on_true = on_true;
  b->nfix++;
}

/* Places ALLOW and EPERM and points every pending jump at them; -1 if one is out of a jump's reach. */
static int finish(struct builder *b) {
  size_t target[2];
  target[TO_ALLOW] = b->n;
  ret(b, SECCOMP_RET_ALLOW);
  target[TO_EPERM] = b->n;
  ret(b, SECCOMP_RET_ERRNO | EPERM);
  for (size_t i = 0; i < b->nfix; i++) {
    size_t off = target[b->fix[i].to] - b->fix[i].at - 1;
    if (off > 255) return -1; /* conditional jumps reach 255 instructions ahead at most */
    if (b->fix[i].on_true) b->insn[b->fix[i].at].jt = (unsigned char)off;
    else b->insn[b->fix[i].at].jf = (unsigned char)off;
  }
  return 0;
}

/* A holds the syscall number, and still does after these rules for any other call. */
static void socket_rules(struct builder *b) {
  branch(b, BPF_JEQ | BPF_K, SYS_socket, 1, 0);
  size_t not_socket = branch(b, BPF_JEQ | BPF_K, SYS_socketpair, 0, 0);
  load(b, ARG_LOW(0)); /* domain */
  for (size_t i = 0; i < NFAMILIES; i++) jump_to(b, BPF_JEQ | BPF_K, socket_families[i], TO_ALLOW, 1);
  branch(b, BPF_JEQ | BPF_K, AF_NETLINK, 1, 0);
  ret(b, SECCOMP_RET_ERRNO | EAFNOSUPPORT);
  load(b, ARG_LOW(2)); /* protocol (socketpair refuses AF_NETLINK itself: EOPNOTSUPP) */
  jump_to(b, BPF_JEQ | BPF_K, NETLINK_ROUTE, TO_ALLOW, 1);
  ret(b, SECCOMP_RET_ERRNO | EPROTONOSUPPORT);
  skip_to_here(b, not_socket);
}

int install_seccomp(struct init_error *e) {
  static struct builder b;
  b.n = b.nfix = 0;

  load(&b, offsetof(struct seccomp_data, arch));
  branch(&b, BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
  ret(&b, SECCOMP_RET_KILL_PROCESS);
  load(&b, offsetof(struct seccomp_data, nr));
  jump_to(&b, BPF_JGE | BPF_K, X32_SYSCALL_BIT, TO_EPERM, 1);

  /* clone: namespace flags in the low 32 bits of the flags argument get EPERM */
  size_t not_clone = branch(&b, BPF_JEQ | BPF_K, SYS_clone, 0, 0);
  load(&b, ARG_LOW(0));
  jump_to(&b, BPF_JSET | BPF_K, NAMESPACE_FLAGS, TO_ALLOW, 0);
  ret(&b, SECCOMP_RET_ERRNO | EPERM);
  skip_to_here(&b, not_clone);

  branch(&b, BPF_JEQ | BPF_K, SYS_clone3, 0, 1);
  ret(&b, SECCOMP_RET_ERRNO | ENOSYS);

  socket_rules(&b);

  /* each denied syscall jumps to EPERM; the fall-through is ALLOW */
  for (size_t i = 0; i < NDENIED; i++) jump_to(&b, BPF_JEQ | BPF_K, (unsigned)denied[i], TO_EPERM, 1);
  if (finish(&b) < 0) return fail(e, E2BIG, DYNO_STEP_SECCOMP, "prctl", "filter jump out of reach");

  struct sock_fprog fprog = {(unsigned short)b.n, b.insn};
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) < 0)
    return fail(e, errno, DYNO_STEP_SECCOMP, "prctl", "PR_SET_SECCOMP");
  return 0;
}
