// Every native failure reaches JS as an Error with .errno (positive), .syscall and .step; the TS
// layer turns .errno into the errno name (.code), as Node's own SystemError does. The step is an
// enum of the shared table (native/common/dyno_table.h), so JS only ever sees names it knows.
#pragma once

#include <napi.h>

#include "../common/dyno_table.h"

Napi::Error MakeSystemError(Napi::Env env, int err, const char *syscall, enum dyno_step step);
