// Every native failure reaches JS as an Error with .errno (positive), .syscall and .step; the TS
// layer turns .errno into the errno name (.code), as Node's own SystemError does.
#pragma once

#include <napi.h>

Napi::Error MakeSystemError(Napi::Env env, int err, const char *syscall, const char *step);
