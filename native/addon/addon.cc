// N-API surface of the runtime: loadHelper(), spawn(), pipe(), ptys, file watches, deleteLink(),
// deleteNeighbour().
// Everything else (cgroups, rootfs preparation, the config encoding) lives in TypeScript under
// src/runtime/.
#include <errno.h>
#include <fcntl.h>
#include <napi.h>
#include <sched.h>
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <string>

#include "../common/protocol.h"
#include "dyno_process.h"
#include "errors.h"
#include "file_lock.h"
#include "file_watch.h"
#include "helper_memfd.h"
#include "rtnl_delete.h"
#include "peer_cred.h"
#include "spawn.h"
#include "tables.h"

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
    MakeSystemError(env, -fd, failed, DYNO_STEP_LOAD_HELPER).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (helper_fd >= 0) close(helper_fd);
  helper_fd = fd;
  return env.Undefined();
}

// Clones one dyno on a libuv pool thread, so the JS thread never sleeps through clone3 and the
// helper's exec (CLONE_VFORK holds the calling thread until then). Pool threads live as long as
// the process, which matters: PR_SET_PDEATHSIG fires when the *thread* that cloned dies.
class SpawnWorker : public Napi::AsyncWorker {
 public:
  SpawnWorker(Napi::Function on_spawned, std::string config, int cgroup_fd, const int stdio[3], bool host_netlink,
              Napi::Function on_status, Napi::Function on_exit)
      : Napi::AsyncWorker(on_spawned, "manifold:spawn"),
        config_(std::move(config)),
        cgroup_fd_(cgroup_fd),
        host_netlink_(host_netlink),
        on_status_(Napi::Persistent(on_status)),
        on_exit_(Napi::Persistent(on_exit)) {
    for (int i = 0; i < 3; i++) stdio_[i] = stdio[i];
  }

  ~SpawnWorker() override {
    // our duplicates of the caller's fds: the child has its own copies by now
    for (int fd : stdio_)
      if (fd >= 0) close(fd);
    if (cgroup_fd_ >= 0) close(cgroup_fd_);
  }

  void Execute() override {
    int channel[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, channel) < 0) return Fail(errno, "socketpair");
    // The whole config is queued before clone3, so dyno-init can read it at once.
    int sndbuf = DYNO_CONFIG_MAX * 2;
    setsockopt(channel[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (send(channel[0], config_.data(), config_.size(), MSG_NOSIGNAL) != (ssize_t)config_.size()) {
      int err = errno;
      close(channel[0]);
      close(channel[1]);
      return Fail(err, "send");
    }
    SpawnRequest req;
    req.helper_fd = helper_fd;
    req.cgroup_fd = cgroup_fd_;
    for (int i = 0; i < 3; i++) req.stdio[i] = stdio_[i];
    req.status_fd = channel[1];
    req.namespaces = kDynoNamespaces;
    req.netlink_fd = -1;
    if (host_netlink_) {
      req.netlink_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
      if (req.netlink_fd < 0) {
        int err = errno;
        close(channel[0]);
        close(channel[1]);
        return Fail(err, "socket");
      }
    }
    result_ = CloneDyno(req);
    close(channel[1]);
    if (req.netlink_fd >= 0) close(req.netlink_fd);
    if (result_.pid < 0) {
      close(channel[0]);
      return Fail(result_.err, result_.syscall);
    }
    fcntl(channel[0], F_SETFL, O_NONBLOCK);
    status_fd_ = channel[0];
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (err_) {
      Callback().Call({MakeSystemError(env, err_, syscall_, DYNO_STEP_SPAWN).Value(), env.Undefined()});
      return;
    }
    Napi::Object obj = dyno_constructor->New({});
    DynoProcess::Unwrap(obj)->Start(env, result_.pid, result_.pidfd, status_fd_, on_status_.Value(), on_exit_.Value());
    Callback().Call({env.Null(), obj});
  }

 private:
  void Fail(int err, const char *syscall) {
    err_ = err;
    syscall_ = syscall;
  }

  std::string config_;
  int cgroup_fd_;
  int stdio_[3];
  bool host_netlink_;
  Napi::FunctionReference on_status_;
  Napi::FunctionReference on_exit_;
  SpawnResult result_ = {-1, -1, 0, nullptr};
  int status_fd_ = -1;
  int err_ = 0;
  const char *syscall_ = "";
};

// spawn(config, cgroupFd, stdio, hostNetlink, onStatus, onExit, onSpawned(err, DynoProcess)).
// The fds are duplicated before this returns, so the caller may close its own at once.
// hostNetlink: pass dyno-init a NETLINK_ROUTE socket of this (the host's) network namespace.
Napi::Value Spawn(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (helper_fd < 0) {
    MakeSystemError(env, ENOEXEC, "execveat", DYNO_STEP_SPAWN).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Buffer<char> config = info[0].As<Napi::Buffer<char>>();
  int cgroup_fd = info[1].As<Napi::Number>().Int32Value();
  Napi::Array stdio = info[2].As<Napi::Array>();
  bool host_netlink = info[3].As<Napi::Boolean>().Value();
  if (config.Length() > DYNO_CONFIG_MAX - 1) {
    MakeSystemError(env, E2BIG, "send", DYNO_STEP_CONFIG).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fds[4] = {-1, -1, -1, -1};
  int sources[4] = {stdio.Get(0u).As<Napi::Number>().Int32Value(), stdio.Get(1u).As<Napi::Number>().Int32Value(),
                    stdio.Get(2u).As<Napi::Number>().Int32Value(), cgroup_fd};
  for (int i = 0; i < 4; i++) {
    if (i == 3 && sources[i] < 0) break;  // no cgroup
    fds[i] = fcntl(sources[i], F_DUPFD_CLOEXEC, 3);
    if (fds[i] < 0) {
      int err = errno;
      for (int j = 0; j < i; j++) close(fds[j]);
      MakeSystemError(env, err, "fcntl", DYNO_STEP_SPAWN).ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  auto *worker = new SpawnWorker(info[6].As<Napi::Function>(), std::string(config.Data(), config.Length()), fds[3], fds,
                                 host_netlink, info[4].As<Napi::Function>(), info[5].As<Napi::Function>());
  worker->Queue();
  return env.Undefined();
}

// Runs DeleteLinkByName on a pool thread: RTNL and RCU waits must not stall the event loop.
class DeleteLinkWorker : public Napi::AsyncWorker {
 public:
  DeleteLinkWorker(Napi::Function done, std::string name)
      : Napi::AsyncWorker(done, "manifold:deleteLink"), name_(std::move(name)) {}

  void Execute() override { err_ = DeleteLinkByName(name_.c_str()); }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (err_) Callback().Call({MakeSystemError(env, err_, "RTM_DELLINK", DYNO_STEP_NETWORK).Value()});
    else Callback().Call({env.Null()});
  }

 private:
  std::string name_;
  int err_ = 0;
};

// deleteLink(name, done(err)): removes a network interface of the host (a dyno's veth).
Napi::Value DeleteLink(const Napi::CallbackInfo &info) {
  auto *worker = new DeleteLinkWorker(info[1].As<Napi::Function>(), info[0].As<Napi::String>());
  worker->Queue();
  return info.Env().Undefined();
}

// Runs DeleteNeighbour on a pool thread (RTNL, as DeleteLinkWorker).
class DeleteNeighbourWorker : public Napi::AsyncWorker {
 public:
  DeleteNeighbourWorker(Napi::Function done, int ifindex, uint32_t address)
      : Napi::AsyncWorker(done, "manifold:deleteNeighbour"), ifindex_(ifindex), address_(address) {}

  void Execute() override { err_ = DeleteNeighbour(ifindex_, address_); }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (err_) Callback().Call({MakeSystemError(env, err_, "RTM_DELNEIGH", DYNO_STEP_NETWORK).Value()});
    else Callback().Call({env.Null()});
  }

 private:
  int ifindex_;
  uint32_t address_;
  int err_ = 0;
};

// deleteNeighbour(ifindex, address, done(err)): forgets the host's IPv4 neighbour entry for a dyno
// address on the bridge. `address` is dotted-quad text; a malformed one is a TypeError here.
Napi::Value DeleteNeighbourCall(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string text = info[1].As<Napi::String>();
  struct in_addr addr;
  if (inet_pton(AF_INET, text.c_str(), &addr) != 1) {
    Napi::TypeError::New(env, "deleteNeighbour: not an IPv4 address: " + text).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto *worker = new DeleteNeighbourWorker(info[2].As<Napi::Function>(), info[0].As<Napi::Number>().Int32Value(), addr.s_addr);
  worker->Queue();
  return env.Undefined();
}

// pipe() -> [readFd, writeFd], both close-on-exec (a dyno gets them through dup3 only).
Napi::Value Pipe(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    MakeSystemError(env, errno, "pipe2", DYNO_STEP_PIPE).ThrowAsJavaScriptException();
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
    MakeSystemError(env, -rc, "open", DYNO_STEP_WATCH).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return obj;
}

// openPty(cols, rows) -> [master, slave], both close-on-exec: a terminal for an attached one-off
// dyno (its stdio is the slave; dyno-init makes it the controlling terminal).
Napi::Value OpenPty(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct winsize ws = {};
  ws.ws_col = (unsigned short)info[0].As<Napi::Number>().Uint32Value();
  ws.ws_row = (unsigned short)info[1].As<Napi::Number>().Uint32Value();
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) {
    MakeSystemError(env, errno, "posix_openpt", DYNO_STEP_PTY).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  char name[128];
  const char *failed = nullptr;
  int slave = -1;
  if (grantpt(master) < 0) failed = "grantpt";
  else if (unlockpt(master) < 0) failed = "unlockpt";
  else if (ptsname_r(master, name, sizeof name) != 0) failed = "ptsname_r";
  else if ((slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) failed = "open";
  else if (ioctl(master, TIOCSWINSZ, &ws) < 0) failed = "ioctl";
  if (failed) {
    int err = errno;
    close(master);
    if (slave >= 0) close(slave);
    MakeSystemError(env, err, failed, DYNO_STEP_PTY).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, master);
  out.Set(1u, slave);
  return out;
}

// resizePty(masterFd, cols, rows): the window size follows the client's terminal (SIGWINCH inside).
Napi::Value ResizePty(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct winsize ws = {};
  int fd = info[0].As<Napi::Number>().Int32Value();
  ws.ws_col = (unsigned short)info[1].As<Napi::Number>().Uint32Value();
  ws.ws_row = (unsigned short)info[2].As<Napi::Number>().Uint32Value();
  if (ioctl(fd, TIOCSWINSZ, &ws) < 0) MakeSystemError(env, errno, "ioctl", DYNO_STEP_PTY).ThrowAsJavaScriptException();
  return env.Undefined();
}

void Cleanup(void *) { DynoProcess::KillAll(); }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DynoProcess::Init(env);
  dyno_constructor = new Napi::FunctionReference(Napi::Persistent(ctor));
  exports.Set("loadHelper", Napi::Function::New(env, LoadHelper));
  exports.Set("spawn", Napi::Function::New(env, Spawn));
  exports.Set("pipe", Napi::Function::New(env, Pipe));
  exports.Set("deleteLink", Napi::Function::New(env, DeleteLink));
  exports.Set("deleteNeighbour", Napi::Function::New(env, DeleteNeighbourCall));
  exports.Set("openPty", Napi::Function::New(env, OpenPty));
  exports.Set("resizePty", Napi::Function::New(env, ResizePty));
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials));
  exports.Set("lockExclusive", Napi::Function::New(env, LockExclusive));
  watch_constructor = new Napi::FunctionReference(Napi::Persistent(FileWatch::Init(env)));
  exports.Set("watchFile", Napi::Function::New(env, WatchFile));
  exports.Set("tables", MakeTables(env));
  napi_add_env_cleanup_hook(env, Cleanup, nullptr);
  return exports;
}

}  // namespace

NODE_API_MODULE(manifold_native, Init)
