// A running dyno as seen from Node: exit is watched through its pidfd and status messages through
// the status channel, both with uv_poll on the main loop (no thread per dyno, no polling timer).
#pragma once

#include <napi.h>
#include <uv.h>

class DynoProcess : public Napi::ObjectWrap<DynoProcess> {
 public:
  static Napi::Function Init(Napi::Env env);
  DynoProcess(const Napi::CallbackInfo &info);
  ~DynoProcess() override;

  // Takes ownership of pidfd and status_fd; starts watching.
  void Start(Napi::Env env, pid_t pid, int pidfd, int status_fd, Napi::Function on_status, Napi::Function on_exit);
  static void KillAll();  // env cleanup: SIGKILL every dyno still running

 private:
  Napi::Value Kill(const Napi::CallbackInfo &info);
  Napi::Value GetPid(const Napi::CallbackInfo &info);

  static void OnStatusReadable(uv_poll_t *handle, int status, int events);
  static void OnPidfdReadable(uv_poll_t *handle, int status, int events);
  static void OnHandleClosed(uv_handle_t *handle);
  void DrainStatus();
  void Finish(int code, int signal);

  Napi::Env env_ = nullptr;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int status_fd_ = -1;
  bool status_open_ = false;
  bool exited_ = false;
  int open_handles_ = 0;
  uv_poll_t pidfd_poll_;
  uv_poll_t status_poll_;
  Napi::FunctionReference on_status_;
  Napi::FunctionReference on_exit_;
  DynoProcess *next_ = nullptr;  // intrusive list of live dynos
  DynoProcess *prev_ = nullptr;
};
