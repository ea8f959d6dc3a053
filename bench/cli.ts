/**
 * The CLI row: `raptor publish` against a minimal oclif command that publishes one message with
 * ioredis (bench/fixtures/mini-cli), spawned in pairs whose order alternates (A B, B A, A B, …) so
 * that drift on a shared machine falls on both alike. Per spawn: wall time (spawn to exit) and the
 * process's own CPU (user + sys, written at exit by a preloaded module); ratios pair by pair.
 */
import {execFileSync, spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {target, type BenchRow} from './harness.js'
import {fmtRatio, fmtStat, markdownTable, progress, stat} from './lib.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const FIXTURE = join(ROOT, 'bench/fixtures/mini-cli')
const PRELOAD = join(ROOT, 'bench/fixtures/cpu-at-exit.mjs')

/** Generates the fixture's oclif manifest, as `npm run build` does for raptor. */
function buildFixture(): void {
  execFileSync(process.execPath, [join(ROOT, 'node_modules/oclif/bin/run.js'), 'manifest'], {
    cwd: FIXTURE,
    stdio: 'ignore',
  })
}

interface Spawned {
  ms: number
  cpuMs: number
}

function spawnOnce(args: string[], cpuFile: string): Spawned {
  rmSync(cpuFile, {force: true})
  const started = process.hrtime.bigint()
  const r = spawnSync(process.execPath, args, {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {...process.env, BENCH_CPU_FILE: cpuFile, NO_COLOR: '1'},
  })
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited with ${r.status}: ${r.stderr}`)
  const cpu = JSON.parse(readFileSync(cpuFile, 'utf8')) as {user: number; system: number}
  return {ms, cpuMs: (cpu.user + cpu.system) / 1000}
}

export const cliRow: BenchRow = {
  name: 'cli',
  title: 'CLI: one publish, paired with a minimal oclif command',
  async run({url, s}) {
    buildFixture()
    const dir = mkdtempSync(join(tmpdir(), 'raptor-bench-'))
    const cpuFile = join(dir, 'cpu.json')
    const mini = [
      '--import',
      PRELOAD,
      join(FIXTURE, 'bin/run.js'),
      'publish',
      '--redis-url',
      url,
      '--channel',
      'bench.cli',
      '--payload',
      '{"n":1}',
    ]
    // The flags of raptor's shebang.
    const raptor = [
      '--max-semi-space-size=4',
      '--import',
      PRELOAD,
      'bin/run.js',
      'publish',
      '--redis-url',
      url,
      '--prefix',
      'bench-cli',
      '--channel',
      'sys.state.update',
      '--type',
      'bench',
      '--payload',
      '{"n":1}',
    ]
    const nodeE0 = ['--import', PRELOAD, '-e', '0']
    try {
      for (let i = 0; i < 3; i++) for (const args of [mini, raptor, nodeE0]) spawnOnce(args, cpuFile)
      const a: Spawned[] = []
      const b: Spawned[] = []
      const z: Spawned[] = []
      for (let i = 0; i < s.cliRuns; i++) {
        if (i % 2 === 0) {
          a.push(spawnOnce(mini, cpuFile))
          b.push(spawnOnce(raptor, cpuFile))
        } else {
          b.push(spawnOnce(raptor, cpuFile))
          a.push(spawnOnce(mini, cpuFile))
        }
        z.push(spawnOnce(nodeE0, cpuFile))
        progress(`pair ${i + 1}/${s.cliRuns}: mini ${a[i].ms.toFixed(0)} ms, raptor ${b[i].ms.toFixed(0)} ms`)
      }
      const wall = stat(b.map((x, i) => x.ms / a[i].ms))
      const cpu = stat(b.map((x, i) => x.cpuMs / a[i].cpuMs))
      const row = (label: string, xs: Spawned[], vs?: Spawned[]) => [
        label,
        fmtStat(stat(xs.map((x) => x.ms)), 1),
        fmtStat(stat(xs.map((x) => x.cpuMs)), 1),
        vs ? fmtRatio(stat(xs.map((x, i) => x.ms / vs[i].ms))) : '',
        vs ? fmtRatio(stat(xs.map((x, i) => x.cpuMs / vs[i].cpuMs))) : '',
      ]
      return {
        markdown: [
          `${s.cliRuns} pairs after 3 warm-ups, order alternating; \`node -e 0\` spawned after each pair for reference. Every process is \`node --import bench/fixtures/cpu-at-exit.mjs …\` (its own CPU, written at exit).`,
          '',
          markdownTable(
            ['command', 'wall ms', 'CPU ms', 'wall × mini (paired)', 'CPU × mini (paired)'],
            [
              row('minimal oclif publish with ioredis (bench/fixtures/mini-cli)', a, a),
              row('`raptor publish` (one event)', b, a),
              row('`node -e 0`', z),
            ],
          ),
        ].join('\n'),
        targets: [
          target('`raptor publish` wall time vs minimal oclif publish (paired)', wall.median, 1.3, false),
          target('`raptor publish` CPU vs minimal oclif publish (paired)', cpu.median, 1.3, false),
        ],
      }
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  },
}
