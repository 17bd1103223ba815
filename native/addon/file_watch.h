// Kernel event files (memory.events, cgroup.events): kernfs wakes pollers with POLLPRI|POLLERR on
// every change, so the fd is watched with UV_PRIORITIZED on the main loop (never UV_READABLE: a
// regular file always polls readable). Each wake-up re-reads the whole file with pread, which
// also re-arms the notification.
#pragma once

#include <napi.h>
#include <uv.h>

class FileWatch : public Napi::ObjectWrap<FileWatch> {
 public:
  static Napi::Function Init(Napi::Env env);
  FileWatch(const Napi::CallbackInfo &info);
  ~FileWatch() override;
  // Opens path and starts watching; returns -errno on failure.
  int Start(Napi::Env env, const std::string &path, Napi::Function on_change);

 private:
  Napi::Value Close(const Napi::CallbackInfo &info);
  static void OnEvent(uv_poll_t *handle, int status, int events);
  static void OnClosed(uv_handle_t *handle);

  Napi::Env env_ = nullptr;
  int fd_ = -1;
  bool open_ = false;
  uv_poll_t poll_;
  Napi::FunctionReference on_change_;
};
