// clone3 with CLONE_VM | CLONE_VFORK: the child borrows the parent's memory (no page-table copy,
// no copy-on-write faults in a large Node heap) on a stack of its own, runs fn(arg) and must end
// in execve or _exit. The calling thread sleeps until then. Needs a few lines of assembly, because
// the child starts on the new stack right after the syscall instruction (x86-64 only; elsewhere
// callers fall back to clone3 with fork semantics).
#pragma once

#include <stddef.h>

#include "sys.h"

#if defined(__x86_64__)
#define MANIFOLD_HAVE_CLONE_VM 1
// Returns the child's pid, or -errno. fn never returns (it execs or exits).
extern "C" long manifold_clone3_vm(struct clone3_args *args, size_t size, void (*fn)(void *), void *arg);
#endif
