#include "file_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <string>

#include "errors.h"

Napi::Value LockExclusive(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  bool directory = info[1].As<Napi::Boolean>().Value();
  int flags = O_CLOEXEC | O_NOFOLLOW | (directory ? (O_RDONLY | O_DIRECTORY) : (O_RDWR | O_CREAT));
  int fd = open(path.c_str(), flags, 0600);
  if (fd < 0) {
    MakeSystemError(env, errno, "open", DYNO_STEP_LOCK).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // flock, not fcntl locks: it belongs to this open file description, so a child that inherits
  // nothing (O_CLOEXEC) can't hold it past us, and closing another fd of the file doesn't drop it.
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int err = errno;
    close(fd);
    MakeSystemError(env, err, "flock", DYNO_STEP_LOCK).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}
