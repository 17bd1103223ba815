// Runs INSIDE the test VM: executes the guest test files one after another, each in its own node process,
// and prints one TAP stream (one subtest per file) on stdout. Exit status 1 if any file failed.
//
//   node dist/test/vm/guest-runner.js [file.test.js ...]     (default: every dist/test/vm/guest/*.test.js)
//
// Why not the `tap` runner: under TCG it costs minutes (it rebuilds its plugin class when that differs
// from the config, loads coverage/processinfo hooks per file) and writes .tap/ into the repo. Plain node
// with the tap library costs ~1.5 s to start plus ~5 s to load tap. Not a *.test.js file, so the host's
// tap run does not pick it up.
import { spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { createInterface } from 'node:readline'

// per file; also handed to tap as TAP_TIMEOUT (tap's own default, 30 s, is too short under TCG)
const FILE_TIMEOUT_S = Number(process.env.MANIFOLD_VM_FILE_TIMEOUT ?? 180)

interface Outcome {
  ok: boolean
  why: string
}

const out = (line: string): void => void process.stdout.write(line + '\n')

const runFile = (file: string): Promise<Outcome> =>
  new Promise((done) => {
    const child = spawn(process.execPath, [file], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, TAP: '1', TAP_TIMEOUT: String(FILE_TIMEOUT_S) },
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), (FILE_TIMEOUT_S + 10) * 1000)
    const lines = createInterface({ input: child.stdout })
    lines.on('line', (line) => {
      if (!/^TAP version \d+/.test(line)) out(line === '' ? '' : '    ' + line)
    })
    let closed = false
    const finished = new Promise<void>((r) => lines.on('close', () => ((closed = true), r())))
    child.on('error', (err) => done({ ok: false, why: `cannot start node: ${err.message}` }))
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      const why = signal ? `killed by ${signal}${signal === 'SIGKILL' ? ' (timeout?)' : ''}` : `exit code ${code}`
      void (closed ? Promise.resolve() : finished).then(() => done({ ok: code === 0, why }))
    })
  })

const main = async (): Promise<number> => {
  const here = __dirname
  const files = process.argv.length > 2
    ? process.argv.slice(2).map((f) => resolve(f))
    : readdirSync(join(here, 'guest'))
        .filter((f) => f.endsWith('.test.js'))
        .sort()
        .map((f) => join(here, 'guest', f))
  out('TAP version 14')
  let failed = 0
  for (const [i, file] of files.entries()) {
    const name = relative(process.cwd(), file)
    const start = Date.now()
    out(`# Subtest: ${name}`)
    const r = await runFile(file)
    const time = `# time=${Date.now() - start}ms`
    if (r.ok) {
      out(`ok ${i + 1} - ${name} ${time}`)
    } else {
      failed++
      out(`not ok ${i + 1} - ${name} ${time}`)
      out('  ---')
      out(`  reason: ${JSON.stringify(r.why)}`)
      out('  ...')
    }
    out('')
  }
  out(`1..${files.length}`)
  if (files.length === 0) out('# no guest test files found')
  return failed === 0 && files.length > 0 ? 0 : 1
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    out(`Bail out! guest runner crashed: ${String(err)}`)
    process.exitCode = 2
  },
)
