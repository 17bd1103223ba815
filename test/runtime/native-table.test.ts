/**
 * The names shared by C and TypeScript agree: the addon's copy of native/common/dyno_table.h is
 * src/runtime/native-table.ts, and a stop signal is exactly one dyno-init forwards.
 */
import os from 'node:os';
import t from 'tap';
import { native } from '../../src/runtime/native';
import { checkNativeTables, isStopSignal, NATIVE_STEPS, STOP_SIGNALS } from '../../src/runtime/native-table';

t.test('the addon exports the same steps and stop signals as the TypeScript table', async (t) => {
  const tables = native().tables; // native() already refuses a mismatch; say what differs if it does
  t.same(tables.steps, NATIVE_STEPS, 'steps, in order');
  t.same(tables.stopSignals, STOP_SIGNALS, 'stop signals, in order');
  t.equal(new Set(NATIVE_STEPS).size, NATIVE_STEPS.length, 'no step named twice');
});

t.test('a mismatch is refused', async (t) => {
  t.throws(() => checkNativeTables({ steps: NATIVE_STEPS, stopSignals: [...STOP_SIGNALS, 'SIGWINCH'] }), /disagree/);
  t.throws(() => checkNativeTables({ steps: NATIVE_STEPS.slice(1), stopSignals: STOP_SIGNALS }), /disagree/);
  t.doesNotThrow(() => checkNativeTables({ steps: [...NATIVE_STEPS], stopSignals: [...STOP_SIGNALS] }));
});

t.test('stop signals are real signals, and only the forwarded ones', async (t) => {
  for (const s of STOP_SIGNALS) t.type(os.constants.signals[s], 'number', `${s} exists`);
  t.ok(isStopSignal('SIGQUIT'), 'SIGQUIT (nginx) is one');
  for (const s of ['SIGWINCH', 'SIGKILL', 'SIGSTOP', 'SIGCHLD', 'TERM']) t.notOk(isStopSignal(s), `${s} is not`);
});
