#include "tables.h"

#include "../common/dyno_table.h"

Napi::Object MakeTables(Napi::Env env) {
  Napi::Array steps = Napi::Array::New(env, DYNO_STEP_COUNT);
  for (uint32_t i = 0; i < DYNO_STEP_COUNT; i++) steps.Set(i, dyno_step_names[i]);
  Napi::Array signals = Napi::Array::New(env, DYNO_STOP_SIGNAL_COUNT);
  for (uint32_t i = 0; i < DYNO_STOP_SIGNAL_COUNT; i++) signals.Set(i, dyno_stop_signals[i].name);
  Napi::Object tables = Napi::Object::New(env);
  tables.Set("steps", steps);
  tables.Set("stopSignals", signals);
  return tables;
}
