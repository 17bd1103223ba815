// Exclusive, process-lifetime locks (flock) on a daemon's state directory and cgroup subtree: a
// second daemon on either exits with one line instead of running duplicate dynos or killing the
// first one's. The kernel drops the lock when the holder dies (kill -9 included), so no stale
// lock file can keep a restarted daemon out.
#pragma once

#include <napi.h>

// lockExclusive(path, directory) -> fd (close-on-exec, held until the process exits or closes it).
// directory: lock the directory itself; else create/open a regular lock file (O_NOFOLLOW).
// Throws a system error; EWOULDBLOCK (errno 11) means another process holds the lock.
Napi::Value LockExclusive(const Napi::CallbackInfo &info);
