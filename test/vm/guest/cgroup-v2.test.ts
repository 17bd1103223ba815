// Guest smoke test: runs INSIDE the pure-cgroup-v2 VM (vagrant/qemu), started by test/vm/run-vm-suite.test.ts.
// Plain node + /sys/fs/cgroup writes, no Manifold code: it proves the VM gives what the runtime tests need.
// On any other machine it skips itself (the host's tap run also picks up dist/test/vm/guest/*.test.js).
import t, { Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmdirSync, statfsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const ROOT = '/sys/fs/cgroup'
const CGROUP2_SUPER_MAGIC = 0x63677270

const read = (file: string): string => readFileSync(file, 'utf8')

/** Parse a flat-keyed cgroup file (memory.events, pids.events, cgroup.events) into numbers. */
const keyed = (file: string): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const line of read(file).split('\n')) {
    const [k, v] = line.split(' ')
    if (k && v !== undefined) out[k] = Number(v)
  }
  return out
}

/** Make a child cgroup of the root, removed (after killing what is left in it) when the test ends. */
const makeCgroup = (tt: Test, name: string): string => {
  const dir = join(ROOT, `${name}-${process.pid}`)
  mkdirSync(dir)
  tt.teardown(() => {
    if (!existsSync(dir)) return
    writeFileSync(join(dir, 'cgroup.kill'), '1')
    const until = Date.now() + 10_000
    while (keyed(join(dir, 'cgroup.events')).populated !== 0 && Date.now() < until) {
      spawnSync('sleep', ['0.05'])
    }
    rmdirSync(dir)
  })
  return dir
}

/** Run argv inside the cgroup: `sh` moves itself there, then execs argv, so all it starts is counted there. */
const runIn = (dir: string, argv: string[], timeout: number) =>
  spawnSync('sh', ['-c', `echo $$ > ${join(dir, 'cgroup.procs')} && exec "$@"`, 'sh', ...argv], {
    encoding: 'utf8',
    timeout,
  })

if (process.env.MANIFOLD_VM !== '1') {
  t.plan(0, 'guest-only test: run through test/vm/run-vm-suite (vagrant/qemu/run.sh)')
} else {
  t.test('/sys/fs/cgroup is a pure cgroup v2 hierarchy with the controllers we delegate', async (tt) => {
    tt.equal(statfsSync(ROOT).type, CGROUP2_SUPER_MAGIC, '/sys/fs/cgroup is cgroup2fs')
    const v1 = read('/proc/self/mounts')
      .split('\n')
      .filter((l) => l.split(' ')[2] === 'cgroup')
    tt.same(v1, [], 'no cgroup v1 hierarchy is mounted')
    const available = read(join(ROOT, 'cgroup.controllers')).trim().split(' ')
    const enabled = read(join(ROOT, 'cgroup.subtree_control')).trim().split(' ')
    for (const c of ['cpu', 'memory', 'pids', 'io']) {
      tt.ok(available.includes(c), `controller ${c} is available`)
      tt.ok(enabled.includes(c), `controller ${c} is enabled for children of the root`)
    }
  })

  t.test('memory.max 64M OOM-kills a process allocating 200 MB', async (tt) => {
    const cg = makeCgroup(tt, 'smoke-oom')
    writeFileSync(join(cg, 'memory.max'), '64M')
    if (existsSync(join(cg, 'memory.swap.max'))) writeFileSync(join(cg, 'memory.swap.max'), '0')
    tt.equal(read(join(cg, 'memory.max')).trim(), String(64 * 1024 * 1024), 'memory.max reads back as 64 MiB')

    const hog = `const a = []; for (let i = 0; i < 200; i++) a.push(Buffer.alloc(1 << 20, 1)); console.log('allocated 200 MB')`
    const r = runIn(cg, [process.execPath, '-e', hog], 120_000)
    tt.equal(r.signal, 'SIGKILL', 'the allocating process was killed with SIGKILL')
    tt.notMatch(r.stdout, /allocated/, 'it never finished allocating')
    const events = keyed(join(cg, 'memory.events'))
    tt.ok((events.oom_kill ?? 0) >= 1, `memory.events shows oom_kill >= 1 (${JSON.stringify(events)})`)
  })

  t.test('pids.max stops a fork loop', async (tt) => {
    const cg = makeCgroup(tt, 'smoke-pids')
    writeFileSync(join(cg, 'pids.max'), '8')
    // each `sleep &` is one more pid; the loop stops at the first failed fork (dash exits on it)
    const loop = 'n=0; while [ $n -lt 64 ]; do sleep 30 >/dev/null 2>&1 & n=$((n + 1)); echo $n; done'
    const r = runIn(cg, ['sh', '-c', loop], 60_000)
    const started = r.stdout.trim().split('\n').filter(Boolean).length
    tt.ok(started < 64, `the loop was stopped after ${started} forks`)
    tt.ok(started <= 8, 'no more than pids.max processes were started')
    tt.not(r.status, 0, `the shell failed to fork (${r.stderr.trim()})`)
    const events = keyed(join(cg, 'pids.events'))
    tt.ok((events.max ?? 0) >= 1, `pids.events shows max >= 1 (${JSON.stringify(events)})`)
    tt.ok(Number(read(join(cg, 'pids.current'))) <= 8, 'pids.current stays within pids.max')
  })

  t.test('network tooling: veth pairs can be made (module autoload works)', async (tt) => {
    const name = `mvm${process.pid % 100000}`
    const r = spawnSync('ip', ['link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`], { encoding: 'utf8' })
    tt.equal(r.status, 0, `ip link add type veth (${r.stderr.trim()})`)
    tt.teardown(() => void spawnSync('ip', ['link', 'del', name]))
    const show = spawnSync('ip', ['-br', 'link', 'show', name], { encoding: 'utf8' })
    tt.match(show.stdout, name, 'the veth shows up')
  })
}
