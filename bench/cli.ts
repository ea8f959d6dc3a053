import {execFileSync, spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {median, progress, type Settings} from './lib.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const FIXTURE = join(ROOT, 'bench/fixtures/mini-cli')

export interface CliResult {
  key: string
  label: string
  /** Median wall time, ms. */
  ms: number
  tool: 'hyperfine' | 'spawn'
}

function hasHyperfine(): boolean {
  return spawnSync('hyperfine', ['--version']).status === 0
}

/** Generates the fixture's oclif manifest, as `npm run build` does for raptor. */
function buildFixture(): void {
  execFileSync(process.execPath, [join(ROOT, 'node_modules/oclif/bin/run.js'), 'manifest'], {
    cwd: FIXTURE,
    stdio: 'ignore',
  })
}

function measureHyperfine(commands: string[][], runs: number): number[] {
  const dir = mkdtempSync(join(tmpdir(), 'raptor-bench-'))
  try {
    const out = join(dir, 'hyperfine.json')
    const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)
    execFileSync(
      'hyperfine',
      [
        '-N',
        '--warmup',
        '3',
        '--runs',
        String(runs),
        '--export-json',
        out,
        ...commands.map((c) => c.map(quote).join(' ')),
      ],
      {cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit']},
    )
    const json = JSON.parse(readFileSync(out, 'utf8')) as {results: {median: number}[]}
    return json.results.map((r) => r.median * 1000)
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
}

function measureSpawn(command: string[], runs: number): number {
  const times: number[] = []
  for (let i = 0; i < runs + 3; i++) {
    const started = process.hrtime.bigint()
    const r = spawnSync(command[0], command.slice(1), {cwd: ROOT, stdio: 'ignore'})
    const ms = Number(process.hrtime.bigint() - started) / 1e6
    if (r.status !== 0) throw new Error(`${command.join(' ')} exited with ${r.status}`)
    if (i >= 3) times.push(ms) // the first three are warm-up, as with hyperfine --warmup 3
  }
  return median(times)
}

export function runCli(url: string, port: number, s: Settings): CliResult[] {
  buildFixture()
  const node = process.execPath
  const cases: {key: string; label: string; cmd: string[]}[] = [
    {key: 'nodeE0', label: '`node -e 0`', cmd: [node, '-e', '0']},
    {
      key: 'redisCli',
      label: '`redis-cli PUBLISH`',
      cmd: ['redis-cli', '-p', String(port), 'PUBLISH', 'bench.cli', '{"n":1}'],
    },
    {
      key: 'mini',
      label: 'minimal oclif command publishing with ioredis (bench/fixtures/mini-cli)',
      cmd: [
        node,
        join(FIXTURE, 'bin/run.js'),
        'publish',
        '--redis-url',
        url,
        '--channel',
        'bench.cli',
        '--payload',
        '{"n":1}',
      ],
    },
    {key: 'raptorVersion', label: '`raptor --version`', cmd: [node, 'bin/run.js', '--version']},
    {
      key: 'raptorPublish',
      label: '`raptor publish` (one event)',
      cmd: [
        node,
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
      ],
    },
  ]
  const tool = hasHyperfine() ? 'hyperfine' : 'spawn'
  progress(`CLI wall time with ${tool === 'hyperfine' ? 'hyperfine' : `spawn × ${s.cliRuns} (no hyperfine)`}`)
  const times =
    tool === 'hyperfine'
      ? measureHyperfine(
          cases.map((c) => c.cmd),
          s.cliRuns,
        )
      : cases.map((c) => measureSpawn(c.cmd, s.cliRuns))
  return cases.map((c, i) => ({key: c.key, label: c.label, ms: times[i], tool}))
}
