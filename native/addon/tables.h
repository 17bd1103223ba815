// The names shared with TypeScript (native/common/dyno_table.h), as JS sees them.
#pragma once

#include <napi.h>

// { steps: string[], stopSignals: string[] }: native() compares it with src/runtime/native-table.ts.
Napi::Object MakeTables(Napi::Env env);
