// Host side of the VM suite: boots Manifold's pure-cgroup-v2 VM once (vagrant/qemu) and runs the guest
// test files (dist/test/vm/guest/*.test.js) inside it through dist/test/vm/guest-runner.js. The guest's
// TAP becomes a subtest here; the test fails when the guest suite fails, naming each failed guest test.
//
// Needs root (qemu shares / with the guest; setup may apt-get qemu). Without KVM (TCG), expect ~3 s of
// boot plus ~7 s per guest file before its tests start.
import t, { Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const REPO = resolve(__dirname, '../../..') // dist/test/vm -> repo
const QEMU = join(REPO, 'vagrant/qemu')
const RUNNER = join(REPO, 'dist/test/vm/guest-runner.js')
const GUEST_DIR = join(REPO, 'dist/test/vm/guest')
// setup: a no-op when cached, a kernel download (and maybe apt-get install qemu) the first time.
// VM: boot + guest suite; ~1.5 min under TCG on an idle 2-core host, several times that on a busy one.
const SETUP_TIMEOUT_S = 300
const VM_TIMEOUT_S = Number(process.env.MANIFOLD_VM_TIMEOUT ?? 480)

type Parser = Test['parser']
interface TestPoint {
  ok: boolean
  fullname: string
  name: string
  todo: boolean | string
  skip: boolean | string
}

/** Collect every failed test point of a TAP stream, at any depth, by its full name. */
const watchFailures = (parser: Parser, failures: string[]): void => {
  parser.on('child', (child: Parser) => watchFailures(child, failures))
  parser.on('assert', (r: TestPoint) => {
    // no \r or \n may reach our own TAP output: tap-parser would cut the line there
    if (!r.ok && !r.todo && !r.skip) failures.push((r.fullname || r.name).replace(/[\r\n]+/g, ' '))
  })
}

/** Keep the deepest failures only (a failed assertion fails its subtest and file too), without our prefix. */
const leafFailures = (all: string[], prefix: string): string[] =>
  all
    .filter((f) => !all.some((g) => g !== f && g.startsWith(f + ' > ')))
    .map((f) => (f.startsWith(prefix + ' > ') ? f.slice(prefix.length + 3) : f))

const tail = (s: string, lines = 30): string => s.trim().split('\n').slice(-lines).join('\n')

if (process.getuid?.() !== 0) {
  t.plan(0, 'skip: the VM suite needs root (qemu shares the host root with the guest; setup installs qemu)')
} else {
  const timeout = (SETUP_TIMEOUT_S + VM_TIMEOUT_S + 20) * 1000
  // replaces the runner's per-file timeout (300 s in package.json) for this file: tap passes it up over IPC
  t.setTimeout(timeout + 10_000)
  t.test('VM suite: guest tests in the pure cgroup v2 VM', { timeout }, async (tt) => {
    // a no-op after the first run (provision.sh runs it too); the first run downloads the kernel (~70 MB)
    const setup = spawnSync('bash', [join(QEMU, 'setup.sh')], { encoding: 'utf8', timeout: SETUP_TIMEOUT_S * 1000 })
    if (setup.status !== 0) {
      tt.fail(`vagrant/qemu/setup.sh failed (${setup.signal ?? `exit ${setup.status}`})`, {
        stderr: tail(setup.stderr),
      })
      return
    }
    const files = existsSync(GUEST_DIR) ? readdirSync(GUEST_DIR).filter((f) => f.endsWith('.test.js')) : []
    tt.ok(files.length > 0 && existsSync(RUNNER), `guest test files are built (${files.join(', ')})`)
    if (files.length === 0 || !existsSync(RUNNER)) return

    const tmp = mkdtempSync(join(tmpdir(), 'manifold-vm-'))
    tt.teardown(() => rmSync(tmp, { recursive: true, force: true }))
    const status = join(tmp, 'status')
    const started = Date.now()
    const failures: string[] = []
    // absolute node path: the guest sees the host's root, but its PATH is a plain system one
    const cmd = `exec ${process.execPath} ${RUNNER}`
    const sub = tt.spawn(
      'bash',
      [join(QEMU, 'run.sh'), cmd, REPO],
      {
        env: { ...process.env, MANIFOLD_VM_STATUS: status, MANIFOLD_VM_TIMEOUT: String(VM_TIMEOUT_S) },
        stdio: ['ignore', 'pipe', 'inherit'],
        timeout: (VM_TIMEOUT_S + 15) * 1000,
      },
      'guest suite',
    )
    if (sub.subtest) watchFailures(sub.subtest.parser, failures)
    const results = await sub
    const wall = (Date.now() - started) / 1000

    const lines = existsSync(status) ? readFileSync(status, 'utf8').replace(/\r/g, '').split('\n') : []
    const ready = lines.find((l) => l.startsWith('ready '))?.split(' ')[1]
    const exit = lines.find((l) => l.startsWith('exit '))?.split(' ')
    tt.ok(ready, ready ? `the VM booted (guest ready at ${ready} s uptime)` : 'the VM booted (no "ready" from the guest)')
    tt.ok(exit, 'the guest reported an exit status')
    const failed = leafFailures(failures, 'guest suite')
    const named = failed.length ? ` — failed in the guest: ${failed.join('; ')}` : ''
    tt.equal(exit?.[1], '0', `guest suite exit status is 0${named}`)
    tt.ok((results?.count ?? 0) > 0, `the guest ran its tests (${results?.count ?? 0} top-level results)`)
    tt.same(failed, [], `no guest test failed${named}`)
    tt.comment(
      `VM: ready at ${ready ?? '?'} s, command done at ${exit?.[2] ?? '?'} s guest uptime, ${wall.toFixed(1)} s wall`,
    )
  })
}
