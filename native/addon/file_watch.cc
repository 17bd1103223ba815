#include "file_watch.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

Napi::Function FileWatch::Init(Napi::Env env) {
  return DefineClass(env, "FileWatch", {InstanceMethod("close", &FileWatch::Close)});
}

FileWatch::FileWatch(const Napi::CallbackInfo &info) : Napi::ObjectWrap<FileWatch>(info) {}

FileWatch::~FileWatch() {
  if (fd_ >= 0 && !open_) close(fd_);
}

int FileWatch::Start(Napi::Env env, const std::string &path, Napi::Function on_change) {
  fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) return -errno;
  env_ = env;
  on_change_ = Napi::Persistent(on_change);
  uv_loop_t *loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  uv_poll_init(loop, &poll_, fd_);
  poll_.data = this;
  uv_poll_start(&poll_, UV_PRIORITIZED, OnEvent);
  open_ = true;
  Ref();  // alive until close()
  return 0;
}

void FileWatch::OnEvent(uv_poll_t *handle, int status, int) {
  FileWatch *self = static_cast<FileWatch *>(handle->data);
  if (!self->open_) return;
  char buf[4096];
  ssize_t n = pread(self->fd_, buf, sizeof buf - 1, 0);
  if (n < 0) return;
  Napi::HandleScope scope(self->env_);
  self->on_change_.MakeCallback(self->Value(), {Napi::String::New(self->env_, buf, (size_t)n)});
}

void FileWatch::OnClosed(uv_handle_t *handle) {
  FileWatch *self = static_cast<FileWatch *>(handle->data);
  close(self->fd_);
  self->fd_ = -1;
  self->Unref();
}

Napi::Value FileWatch::Close(const Napi::CallbackInfo &info) {
  if (open_) {
    open_ = false;
    uv_poll_stop(&poll_);
    uv_close(reinterpret_cast<uv_handle_t *>(&poll_), OnClosed);
  }
  return info.Env().Undefined();
}
