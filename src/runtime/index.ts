export { CgroupTree, findCgroup2Mount } from './cgroup';
export { Dyno, Runtime, DEFAULT_RUN_DIR, DEFAULT_STOP_GRACE_MS, type ExitStatus, type RuntimeOptions } from './dyno';
export { DynoError, errnoName } from './errors';
export { native } from './native';
export * from './spec';
