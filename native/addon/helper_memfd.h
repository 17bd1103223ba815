// dyno-init is executed from a sealed memfd: a dyno that could reach the helper's file (through
// /proc/1/exe, say) still cannot change what the next dyno runs (CVE-2019-5736 class; LXC rexec.c).
#pragma once

// Returns the memfd (close-on-exec) or -errno; *failed_syscall names the call that failed.
int LoadSealedHelper(const char *path, const char **failed_syscall);
