/**
 * The raptor benchmark suite: `npm run bench` (every row, 5 interleaved rounds, writes
 * bench/RESULTS.md), `npm run bench -- --only publish,live` (those rows; written to
 * bench/results/<row>.md and stdout, never to RESULTS.md), `--rounds N`, `--quick` (fewer events,
 * shorter runs, 3 rounds; also written to bench/results/ only), `--list` (the row names).
 *
 * It starts its own redis-server on a free port with no persistence; every row measures raptor
 * beside its baselines (raw ioredis on the same server, BullMQ, NATS JetStream on 127.0.0.1:4222 /
 * NATS_URL when it answers) in the same run, round by round, and reports medians, ranges (min–max)
 * and ratios taken round by round.
 *
 * Adding a row (any lane): in `bench/<row>.ts` export a {@link BenchRow} —
 *
 *     export const myRow: BenchRow = {name: 'my-row', title: 'What it shows', run: async ({url, port, admin, s}) => ({markdown, targets})}
 *
 * — and register it with one line in `ROWS` below. `run` gets the server's URL, an admin connection
 * and the settings (`s.runs` rounds, `s.quick`, `s.events`, `s.liveMs`…) and returns Markdown (tables,
 * no heading) and optional target lines. bench/harness.ts has the helpers: `interleave` (rounds A, B,
 * C, A, B, C…), `profiled` (events/s, client and Redis CPU µs and Redis bytes per event), `ratioOver`
 * (ratios round by round), `flush` (empty the server between cases), `skip` (leave a case out).
 */
import {mkdirSync, writeFileSync} from 'node:fs'
import {cpus, loadavg} from 'node:os'

import {Redis} from 'ioredis'

import {RedisServer} from '../test/helpers/redis-server.js'
import {cliRow} from './cli.js'
import {clusterRow} from './cluster.js'
import {agentRow, consumeRow} from './durable.js'
import {channelsRow, groupsRow, payloadRow, streamRow} from './flat.js'
import type {BenchRow, RowResult, Target} from './harness.js'
import {machine, markdownTable, progress, settings} from './lib.js'
import {fanoutRow, liveRow} from './live.js'
import {publishRow} from './publish.js'
import {NATS_SERVER} from './publishers.js'
import {sseRow} from './sse.js'

const ROWS: BenchRow[] = [
  publishRow,
  consumeRow,
  liveRow,
  payloadRow,
  channelsRow,
  streamRow,
  fanoutRow,
  groupsRow,
  agentRow,
  cliRow,
  sseRow,
  clusterRow,
]

const s = settings()
if (process.argv.includes('--list')) {
  for (const row of ROWS) process.stdout.write(`${row.name.padEnd(12)} ${row.title}\n`)
  process.exit(0)
}
const unknown = s.only.filter((name) => !ROWS.some((r) => r.name === name))
if (unknown.length > 0) {
  process.stderr.write(`bench: no row ${unknown.join(', ')}; rows: ${ROWS.map((r) => r.name).join(', ')}\n`)
  process.exit(2)
}
const selected = s.only.length === 0 ? ROWS : ROWS.filter((r) => s.only.includes(r.name))
const complete = s.only.length === 0 && !s.quick

const started = Date.now()
const loadAtStart = loadavg()[0]
const server = await RedisServer.start()
const admin = new Redis(server.url)
const sections: {row: BenchRow; result: RowResult}[] = []
let header = ''
try {
  const redisVersion = /redis_version:(\S+)/.exec(await admin.info('server'))?.[1] ?? 'unknown'
  const m = machine(redisVersion)
  const nats = await natsVersion()
  const args = process.argv.slice(2).join(' ')
  header = [
    `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC with \`npm run bench${args ? ` -- ${args}` : ''}\`` +
      ` on ${m.cores} cores (${m.cpu}), ${m.os}, Node ${m.node}, Redis ${m.redis} (its own redis-server, no persistence), ` +
      `NATS ${nats} (JetStream, memory streams).`,
    `${s.runs} rounds, interleaved (every case once a round, A, B, C, A, B, C…); each figure is the median of the rounds, ` +
      `with the range (min–max) in brackets; a ratio "× raw" is taken round by round (raptor of round i over raw of round i) ` +
      `and is their median (range). Payloads are ${s.payloadBytes} bytes of JSON unless a row says otherwise` +
      `${s.quick ? '; quick mode: fewer events, shorter runs' : ''}. A shared 2-core machine is noisy: compare ratios within one run.`,
  ].join('\n')
  progress(
    `redis-server ${redisVersion} on ${server.url}; ${s.runs} rounds${s.quick ? ' (quick)' : ''}; rows ${selected.map((r) => r.name).join(', ')}`,
  )
  for (const row of selected) {
    progress(`— ${row.name}: ${row.title}`)
    const rowStarted = Date.now()
    const result = await row.run({url: server.url, port: server.port, s, admin})
    progress(`— ${row.name} done in ${((Date.now() - rowStarted) / 1000).toFixed(0)} s`)
    sections.push({row, result})
    if (!complete) writePartial(row, result)
    await admin.flushall()
  }
} finally {
  await admin.quit()
  await server.stop()
}
const report = render(sections)
process.stdout.write(report + '\n')
if (complete) {
  writeFileSync(new URL('../../bench/RESULTS.md', import.meta.url), report + '\n')
  progress('written to bench/RESULTS.md')
}
// Client libraries may keep timers or reconnecting sockets alive; the report is written, so end here.
process.exit(0)

function render(list: {row: BenchRow; result: RowResult}[]): string {
  const out = [
    '# raptor benchmark results',
    '',
    header,
    `The whole run took ${((Date.now() - started) / 60_000).toFixed(1)} min; the machine's 1-minute load average was ` +
      `${loadAtStart.toFixed(1)} at the start and ${loadavg()[0].toFixed(1)} at the end (on ${cpus().length} cores: above that, ` +
      'other work competed for the CPU and absolute figures are low; the ratios, taken round by round, hold better).',
  ]
  for (const {row, result} of list) out.push('', `## ${row.title} (\`${row.name}\`)`, '', result.markdown)
  const targets = list.flatMap(({result}) => result.targets ?? [])
  if (targets.length > 0) out.push('', '## Targets', '', targetTable(targets))
  return out.join('\n')
}

function targetTable(targets: Target[]): string {
  return markdownTable(
    ['target', 'limit', 'measured', ''],
    targets.map((t) => [t.what, t.limit, t.measured, t.met === undefined ? '–' : t.met ? 'met' : 'NOT met']),
  )
}

/** A row of a partial run goes to bench/results/<row>.md (git-ignored); RESULTS.md is left as it is. */
function writePartial(row: BenchRow, result: RowResult): void {
  const dir = new URL('../../bench/results/', import.meta.url)
  mkdirSync(dir, {recursive: true})
  const text = [
    `# ${row.title} (\`${row.name}\`)`,
    '',
    header,
    '',
    result.markdown,
    ...(result.targets?.length ? ['', targetTable(result.targets)] : []),
    '',
  ].join('\n')
  writeFileSync(new URL(`${row.name}.md`, dir), text)
  progress(`written to bench/results/${row.name}.md`)
}

async function natsVersion(): Promise<string> {
  try {
    const {connect} = await import('nats')
    const nc = await connect({servers: NATS_SERVER, timeout: 1000})
    const version = nc.info?.version ?? 'unknown'
    await nc.close()
    return `${version} on ${NATS_SERVER}`
  } catch {
    return `not reachable on ${NATS_SERVER} (its rows are skipped)`
  }
}
