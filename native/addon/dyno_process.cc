#include "dyno_process.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/protocol.h"
#include "errors.h"
#include "sys.h"

static DynoProcess *live_head = nullptr;

Napi::Function DynoProcess::Init(Napi::Env env) {
  return DefineClass(env, "DynoProcess",
                     {InstanceMethod("kill", &DynoProcess::Kill), InstanceAccessor("pid", &DynoProcess::GetPid, nullptr)});
}

DynoProcess::DynoProcess(const Napi::CallbackInfo &info) : Napi::ObjectWrap<DynoProcess>(info) {}

DynoProcess::~DynoProcess() {
  // Finish() closes everything; this only runs if JS dropped a dyno that never started watching.
  if (pidfd_ >= 0 && open_handles_ == 0) close(pidfd_);
  if (status_fd_ >= 0 && open_handles_ == 0) close(status_fd_);
}

void DynoProcess::Start(Napi::Env env, pid_t pid, int pidfd, int status_fd, Napi::Function on_status,
                        Napi::Function on_exit) {
  env_ = env;
  pid_ = pid;
  pidfd_ = pidfd;
  status_fd_ = status_fd;
  on_status_ = Napi::Persistent(on_status);
  on_exit_ = Napi::Persistent(on_exit);
  Ref();  // alive until the exit callback has run

  uv_loop_t *loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  uv_poll_init(loop, &pidfd_poll_, pidfd_);
  uv_poll_init(loop, &status_poll_, status_fd_);
  pidfd_poll_.data = this;
  status_poll_.data = this;
  open_handles_ = 2;
  status_open_ = true;
  uv_poll_start(&status_poll_, UV_READABLE, OnStatusReadable);
  uv_poll_start(&pidfd_poll_, UV_READABLE, OnPidfdReadable);

  next_ = live_head;
  if (live_head) live_head->prev_ = this;
  live_head = this;
}

void DynoProcess::KillAll() {
  for (DynoProcess *d = live_head; d; d = d->next_) {
    if (!d->exited_) syscall_pidfd_send_signal(d->pidfd_, SIGKILL);
  }
}

Napi::Value DynoProcess::GetPid(const Napi::CallbackInfo &info) { return Napi::Number::New(info.Env(), pid_); }

Napi::Value DynoProcess::Kill(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int sig = info[0].As<Napi::Number>().Int32Value();
  if (exited_) return Napi::Boolean::New(env, false);
  if (syscall_pidfd_send_signal(pidfd_, sig) < 0) {
    if (errno == ESRCH) return Napi::Boolean::New(env, false);  // exiting; the exit event follows
    MakeSystemError(env, errno, "pidfd_send_signal", DYNO_STEP_SIGNAL).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, true);
}

void DynoProcess::DrainStatus() {
  if (!status_open_) return;
  Napi::HandleScope scope(env_);
  for (;;) {
    struct dyno_status s;
    ssize_t n = recv(status_fd_, &s, sizeof s, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;  // EAGAIN: nothing more for now
    Napi::Object msg = Napi::Object::New(env_);
    if (n == 0) {
      msg.Set("kind", "eof");
      uv_poll_stop(&status_poll_);
      status_open_ = false;
    } else if (n != (ssize_t)sizeof s) {
      msg.Set("kind", "error");
      msg.Set("errno", EPROTO);
      msg.Set("step", dyno_step_name(DYNO_STEP_STATUS));
      msg.Set("syscall", "recv");
      msg.Set("detail", "short status message");
    } else {
      static const char *const kinds[] = {"unknown", "error", "started", "exited", "warning"};
      s.step[sizeof s.step - 1] = s.syscall[sizeof s.syscall - 1] = s.detail[sizeof s.detail - 1] = '\0';
      msg.Set("kind", kinds[s.kind <= DYNO_STATUS_WARNING ? s.kind : 0]);
      msg.Set("errno", s.err);
      msg.Set("pid", s.pid);
      msg.Set("step", s.step);
      msg.Set("syscall", s.syscall);
      msg.Set("detail", s.detail);
      if (s.kind == DYNO_STATUS_EXITED) {
        if (WIFEXITED(s.wait_status)) msg.Set("code", WEXITSTATUS(s.wait_status));
        if (WIFSIGNALED(s.wait_status)) msg.Set("signal", WTERMSIG(s.wait_status));
      }
    }
    on_status_.MakeCallback(Value(), {msg});
    if (!status_open_) return;
  }
}

void DynoProcess::OnStatusReadable(uv_poll_t *handle, int, int) {
  static_cast<DynoProcess *>(handle->data)->DrainStatus();
}

void DynoProcess::OnPidfdReadable(uv_poll_t *handle, int, int) {
  DynoProcess *self = static_cast<DynoProcess *>(handle->data);
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (waitid((idtype_t)P_PIDFD, (id_t)self->pidfd_, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0) return;
  // Deliver what dyno-init said before it died (its exact view of the app's exit) before the exit itself.
  self->DrainStatus();
  if (si.si_code == CLD_EXITED) self->Finish(si.si_status, 0);
  else self->Finish(-1, si.si_status);
}

void DynoProcess::OnHandleClosed(uv_handle_t *handle) {
  DynoProcess *self = static_cast<DynoProcess *>(handle->data);
  if (--self->open_handles_ > 0) return;
  close(self->pidfd_);
  close(self->status_fd_);
  self->pidfd_ = self->status_fd_ = -1;
  self->Unref();
}

void DynoProcess::Finish(int code, int signal) {
  exited_ = true;
  if (prev_) prev_->next_ = next_;
  else live_head = next_;
  if (next_) next_->prev_ = prev_;
  next_ = prev_ = nullptr;

  uv_poll_stop(&pidfd_poll_);
  uv_poll_stop(&status_poll_);
  uv_close(reinterpret_cast<uv_handle_t *>(&pidfd_poll_), OnHandleClosed);
  uv_close(reinterpret_cast<uv_handle_t *>(&status_poll_), OnHandleClosed);

  Napi::HandleScope scope(env_);
  Napi::Object status = Napi::Object::New(env_);
  status.Set("code", code < 0 ? env_.Null() : Napi::Number::New(env_, code));
  status.Set("signal", signal ? Napi::Number::New(env_, signal) : env_.Null());
  on_exit_.MakeCallback(Value(), {status});
}
