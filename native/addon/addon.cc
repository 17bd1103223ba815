// N-API surface of the runtime: loadHelper(), spawn(), pipe(). Everything else (cgroups, rootfs
// preparation, the config encoding) lives in TypeScript under src/runtime/.
#include <errno.h>
#include <fcntl.h>
#include <napi.h>
#include <sched.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/protocol.h"
#include "dyno_process.h"
#include "errors.h"
#include "file_watch.h"
#include "helper_memfd.h"
#include "spawn.h"

namespace {

int helper_fd = -1;
Napi::FunctionReference *dyno_constructor = nullptr;
Napi::FunctionReference *watch_constructor = nullptr;

constexpr uint64_t kDynoNamespaces =
    CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET;  // cgroupns: unshared by dyno-init

Napi::Value LoadHelper(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>();
  const char *failed = nullptr;
  int fd = LoadSealedHelper(path.c_str(), &failed);
  if (fd < 0) {
    MakeSystemError(env, -fd, failed, "load-helper").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (helper_fd >= 0) close(helper_fd);
  helper_fd = fd;
  return env.Undefined();
}

// spawn(config: Buffer, cgroupFd: number, stdio: [number, number, number], hostNetlink: boolean, onStatus, onExit)
//   -> DynoProcess. hostNetlink: pass dyno-init a NETLINK_ROUTE socket of this (the host's) network namespace.
Napi::Value Spawn(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (helper_fd < 0) {
    MakeSystemError(env, ENOEXEC, "execveat", "spawn").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Buffer<char> config = info[0].As<Napi::Buffer<char>>();
  int cgroup_fd = info[1].As<Napi::Number>().Int32Value();
  Napi::Array stdio = info[2].As<Napi::Array>();
  bool host_netlink = info[3].As<Napi::Boolean>().Value();
  Napi::Function on_status = info[4].As<Napi::Function>();
  Napi::Function on_exit = info[5].As<Napi::Function>();
  if (config.Length() > DYNO_CONFIG_MAX - 1) {
    MakeSystemError(env, E2BIG, "send", "config").ThrowAsJavaScriptException();
    return env.Undefined();
  }

  int channel[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, channel) < 0) {
    MakeSystemError(env, errno, "socketpair", "spawn").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // The whole config is queued before clone3, so dyno-init can read it at once.
  int sndbuf = DYNO_CONFIG_MAX * 2;
  setsockopt(channel[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  if (send(channel[0], config.Data(), config.Length(), MSG_NOSIGNAL) != (ssize_t)config.Length()) {
    int err = errno;
    close(channel[0]);
    close(channel[1]);
    MakeSystemError(env, err, "send", "config").ThrowAsJavaScriptException();
    return env.Undefined();
  }

  SpawnRequest req;
  req.helper_fd = helper_fd;
  req.cgroup_fd = cgroup_fd;
  for (uint32_t i = 0; i < 3; i++) req.stdio[i] = stdio.Get(i).As<Napi::Number>().Int32Value();
  req.status_fd = channel[1];
  req.namespaces = kDynoNamespaces;
  req.netlink_fd = -1;
  if (host_netlink) {
    req.netlink_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (req.netlink_fd < 0) {
      int err = errno;
      close(channel[0]);
      close(channel[1]);
      MakeSystemError(env, err, "socket", "network").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  SpawnResult res = CloneDyno(req);
  close(channel[1]);
  if (req.netlink_fd >= 0) close(req.netlink_fd);
  if (res.pid < 0) {
    close(channel[0]);
    MakeSystemError(env, res.err, res.syscall, "spawn").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  fcntl(channel[0], F_SETFL, O_NONBLOCK);

  Napi::Object obj = dyno_constructor->New({});
  DynoProcess::Unwrap(obj)->Start(env, res.pid, res.pidfd, channel[0], on_status, on_exit);
  return obj;
}

// pipe() -> [readFd, writeFd], both close-on-exec (a dyno gets them through dup3 only).
Napi::Value Pipe(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    MakeSystemError(env, errno, "pipe2", "pipe").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, fds[0]);
  out.Set(1u, fds[1]);
  return out;
}

// watchFile(path, onChange(contents)) -> FileWatch { close() }
Napi::Value WatchFile(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>();
  Napi::Object obj = watch_constructor->New({});
  int rc = FileWatch::Unwrap(obj)->Start(env, path, info[1].As<Napi::Function>());
  if (rc < 0) {
    MakeSystemError(env, -rc, "open", "watch").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return obj;
}

void Cleanup(void *) { DynoProcess::KillAll(); }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DynoProcess::Init(env);
  dyno_constructor = new Napi::FunctionReference(Napi::Persistent(ctor));
  exports.Set("loadHelper", Napi::Function::New(env, LoadHelper));
  exports.Set("spawn", Napi::Function::New(env, Spawn));
  exports.Set("pipe", Napi::Function::New(env, Pipe));
  watch_constructor = new Napi::FunctionReference(Napi::Persistent(FileWatch::Init(env)));
  exports.Set("watchFile", Napi::Function::New(env, WatchFile));
  napi_add_env_cleanup_hook(env, Cleanup, nullptr);
  return exports;
}

}  // namespace

NODE_API_MODULE(manifold_native, Init)
