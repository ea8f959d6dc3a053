/**
 * SSE fan-out: `raptor serve` (the built CLI, its own process) streaming a 1k events/s publish to 1,
 * 100 and 1,000 connected Server-Sent Events clients (another process), beside `raptor tail --json`
 * on the same stream. Delivery latency is from the send timestamp in each payload to the client's
 * read; the server's RSS is sampled from /proc every 100 ms.
 */
import {fork, spawn, type ChildProcess} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'

import {RaptorBus} from '../src/bus/index.js'
import {nowMicros} from '../src/cli/histogram.js'
import {freePort} from '../test/helpers/redis-server.js'
import type {ClientsReport, ClientsStart} from './sse-clients.js'
import type {BenchRow} from './harness.js'
import {
  fmt,
  fmtStat,
  markdownTable,
  median,
  payloadMaker,
  progress,
  ratio,
  sleep,
  stat,
  type Settings,
} from './lib.js'

/** Payload of the fan-out rows: small, so that the rows measure fan-out rather than bandwidth. */
export const SSE_PAYLOAD_BYTES = 100
const RATE = 1000
const CHANNEL = 'sys.state.update'
const BIN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

export interface SseRun {
  sent: number
  /** Events received, summed over clients. */
  received: number
  /** Events sent × clients. */
  expected: number
  /** Clients the server dropped as slow consumers (its own count, from /metrics). */
  dropped: number
  /** Clients that had not received every event when the receivers stopped (dropped or still behind). */
  incomplete: number
  p50: number
  p99: number
  max: number
  /** Peak RSS of the serving process (raptor serve, or raptor tail), MB. */
  rssMb: number
  /** RSS of `raptor serve` 2 s after every client left, MB. */
  rssAfterMb?: number
  /** CPU of the serving process from the first event sent to the last received, % of one core. */
  serverCpu: number
  /** CPU of the receiving process (the SSE clients, or the reader of tail's output), % of one core. */
  clientCpu: number
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // utime and stime are fields 14 and 15 of stat (11 and 12 after the command name), in ticks.
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

export interface SseResult {
  key: string
  label: string
  clients: number
  runs: SseRun[]
}

function rssMb(pid: number | undefined): number {
  try {
    const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? Number(match[1]) / 1024 : 0
  } catch {
    return 0
  }
}

async function waitForLine(child: ChildProcess, text: string): Promise<void> {
  let seen = ''
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d) => {
      seen += d
      if (seen.includes(text)) resolve()
    })
    child.once('exit', (code) => reject(new Error(`exited ${code} before "${text}": ${seen}`)))
  })
}

/** Clients `raptor serve` dropped as slow consumers, from its /metrics. */
async function serverDrops(streamUrl: string): Promise<number> {
  const text = await (await fetch(new URL('/metrics', streamUrl))).text()
  return [...text.matchAll(/^raptor_gateway_clients_dropped_total\{[^}]*\} (\d+)$/gm)].reduce(
    (n, m) => n + Number(m[1]),
    0,
  )
}

async function publishAtRate(bus: RaptorBus, ms: number): Promise<number> {
  const payload = payloadMaker(SSE_PAYLOAD_BYTES, nowMicros)
  const started = performance.now()
  const inflight = new Set<Promise<unknown>>()
  let sent = 0
  while (performance.now() - started < ms) {
    const due = Math.floor(((performance.now() - started) * RATE) / 1000)
    while (sent < due) {
      const p = bus.publish({channel: CHANNEL, type: 'bench', payload: payload()})
      inflight.add(p)
      void p.finally(() => inflight.delete(p))
      sent++
    }
    await sleep(1)
  }
  await Promise.all(inflight)
  return sent
}

async function oneRun(url: string, clients: number, s: Settings): Promise<SseRun> {
  const prefix = `bench-sse-${randomBytes(4).toString('hex')}`
  const target = ['--redis-url', url, '--prefix', prefix]
  let server: ChildProcess | undefined
  let watched: number | undefined
  let start: ClientsStart
  if (clients > 0) {
    const port = await freePort()
    server = spawn(
      process.execPath,
      [
        ...(process.env.SSE_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
        BIN,
        'serve',
        '--port',
        String(port),
        ...target,
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: {...process.env, NO_COLOR: '1'},
      },
    )
    await waitForLine(server, 'serve: listening on')
    watched = server.pid
    start = {mode: 'sse', n: clients, url: `http://127.0.0.1:${port}/v1/stream?pattern=${CHANNEL}`}
  } else start = {mode: 'tail', bin: BIN, args: [CHANNEL, ...target]}
  const receiver = fork(fileURLToPath(new URL('./sse-clients.js', import.meta.url)), {
    stdio: 'inherit',
    execArgv: process.env.SSE_CLIENT_NODE_ARGS?.split(' ').filter(Boolean) ?? [],
  })
  const next = () => new Promise<unknown>((resolve) => receiver.once('message', resolve))
  const bus = await RaptorBus.connect({redisUrl: url, prefix})
  let peak = 0
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssMb(watched ?? tailPid()))
  }, 100)
  const tailPid = () => {
    // The tail runs as a child of the receiver: find it by its command line.
    try {
      const children = readFileSync(`/proc/${receiver.pid}/task/${receiver.pid}/children`, 'utf8').trim()
      return Number(children.split(' ')[0]) || undefined
    } catch {
      return undefined
    }
  }
  try {
    receiver.send(start)
    await next()
    const served = watched ?? tailPid()
    const cpu0 = [cpuSeconds(served), cpuSeconds(receiver.pid)]
    const t0 = performance.now()
    const sent = await publishAtRate(bus, s.liveMs)
    receiver.send({stop: sent})
    const report = (await next()) as ClientsReport
    const seconds = (performance.now() - t0 - report.idleMs) / 1000
    const cpu = (pid: number | undefined, before: number) =>
      Math.round(((cpuSeconds(pid) - before) / seconds) * 100)
    const serverCpu = cpu(served, cpu0[0])
    const clientCpu = cpu(receiver.pid, cpu0[1])
    // The server's own count: a dropped client that never read up to the reason does not know it.
    const dropped = start.mode === 'sse' ? await serverDrops(start.url) : report.dropped
    let rssAfterMb: number | undefined
    if (start.mode === 'sse') {
      await sleep(2000)
      rssAfterMb = rssMb(watched)
    }
    return {
      sent,
      received: report.received,
      expected: sent * Math.max(clients, 1),
      dropped,
      incomplete: report.incomplete,
      p50: report.latency.p50,
      p99: report.latency.p99,
      max: report.latency.max,
      rssMb: peak,
      rssAfterMb,
      serverCpu,
      clientCpu,
    }
  } finally {
    clearInterval(sampler)
    await bus.close()
    if (receiver.exitCode === null)
      await Promise.race([new Promise((r) => receiver.once('exit', r)), sleep(2000)])
    if (receiver.exitCode === null) receiver.kill()
    if (server && server.exitCode === null) {
      server.kill('SIGTERM')
      await Promise.race([new Promise((r) => server!.once('exit', r)), sleep(5000)])
      if (server.exitCode === null) server.kill('SIGKILL')
    }
  }
}

export async function runSse(url: string, s: Settings): Promise<SseResult[]> {
  const cases: SseResult[] = [
    {key: 'tail', label: '`raptor tail --json` (one process)', clients: 0, runs: []},
    {key: 'sse1', label: '`raptor serve` → 1 SSE client', clients: 1, runs: []},
    {key: 'sse100', label: '`raptor serve` → 100 SSE clients', clients: 100, runs: []},
    {key: 'sse1000', label: '`raptor serve` → 1,000 SSE clients', clients: 1000, runs: []},
  ].filter((c) => !process.env.SSE_CASES || process.env.SSE_CASES.split(',').includes(c.key))
  for (let run = 0; run < s.runs; run++) {
    for (const c of cases) {
      const r = await oneRun(url, c.clients, s)
      c.runs.push(r)
      progress(
        `run ${run + 1}/${s.runs} ${c.label}: p50 ${r.p50} ms p99 ${r.p99} ms, RSS ${r.rssMb.toFixed(1)} MB, ` +
          `received ${r.received} of ${r.expected}, clients dropped ${r.dropped}, incomplete ${r.incomplete}, ` +
          `CPU server ${r.serverCpu}% clients ${r.clientCpu}%` +
          (r.rssAfterMb === undefined ? '' : `, RSS after ${r.rssAfterMb.toFixed(1)} MB`),
      )
    }
  }
  return cases
}

/** The SSE fan-out row of `npm run bench` (registered in bench/run.ts). */
export const sseRow: BenchRow = {
  name: 'sse',
  title: 'SSE fan-out',
  async run({url, s}) {
    return {markdown: renderSse(await runSse(url, s), s).join('\n')}
  },
}

/** The SSE row's Markdown: medians of the rounds with their ranges. */
function renderSse(sse: SseResult[], s: Settings): string[] {
  const tail = sse.find((r) => r.key === 'tail')
  const tailP50 = tail ? median(tail.runs.map((x) => x.p50)) : undefined
  const st = (r: SseResult, pick: (x: SseRun) => number | undefined, digits = 0) =>
    fmtStat(stat(r.runs.map(pick).filter((x): x is number => x !== undefined)), digits)
  const sum = (r: SseResult, f: (x: SseRun) => number) => r.runs.reduce((n, x) => n + f(x), 0)
  return [
    `1,000 events/s for ${s.liveMs / 1000} s a round, ${SSE_PAYLOAD_BYTES}-byte payloads; clients in their own process; ms from the send timestamp in the payload.`,
    '',
    markdownTable(
      [
        'case',
        'p50 ms',
        'p99 ms',
        'p50 × tail',
        'peak RSS MB',
        'RSS MB after',
        'CPU % server',
        'CPU % clients',
        'received / expected (all rounds)',
        'clients dropped',
        'clients incomplete',
      ],
      sse.map((r) => [
        r.label,
        st(r, (x) => x.p50, 1),
        st(r, (x) => x.p99, 1),
        r.key === 'tail' ? '1' : ratio(median(r.runs.map((x) => x.p50)), tailP50),
        st(r, (x) => x.rssMb),
        r.key === 'tail' ? '–' : st(r, (x) => x.rssAfterMb),
        st(r, (x) => x.serverCpu),
        st(r, (x) => x.clientCpu),
        `${fmt(sum(r, (x) => x.received))} / ${fmt(sum(r, (x) => x.expected))}`,
        String(sum(r, (x) => x.dropped)),
        String(sum(r, (x) => x.incomplete)),
      ]),
    ),
    '',
    'Latency is timed on every event of the first 100 clients (the others count theirs). "Peak RSS" is of ' +
      'the serving process (`raptor tail`, or `raptor serve`); "RSS after" is `raptor serve` 2 s after every ' +
      'client left. CPU is from the first event sent to the last received, in % of one core: the server, and ' +
      'the one process holding every client (on a 2-core machine the clients compete with the server). ' +
      '"Clients dropped" is the server\'s count (`raptor_gateway_clients_dropped_total`; for tail: it ' +
      'dropped events for its reader): a client more than `--client-buffer` behind is cut off. "Incomplete": ' +
      'clients that had not received every event when the receivers stopped (dropped, or no event for 10 s).',
  ]
}
