#include "peer_cred.h"

#include <errno.h>
#include <sys/socket.h>

#include "errors.h"

Napi::Value PeerCredentials(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct ucred cred = {};
  socklen_t len = sizeof cred;
  // The credentials were captured by the kernel at connect(2); they can't be forged by the peer.
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    MakeSystemError(env, errno, "getsockopt", DYNO_STEP_PEER_CREDENTIALS).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (len != sizeof cred) {
    MakeSystemError(env, EPROTO, "getsockopt", DYNO_STEP_PEER_CREDENTIALS).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
}
