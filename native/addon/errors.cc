#include "errors.h"

#include <string.h>

#include <string>

Napi::Error MakeSystemError(Napi::Env env, int err, const char *syscall, enum dyno_step step_id) {
  const char *step = dyno_step_name(step_id);
  std::string message = std::string(step) + ": " + syscall + " failed: " + strerror(err);
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, syscall));
  error.Set("step", Napi::String::New(env, step));
  return error;
}
