/**
 * The raptor benchmark suite (`npm run bench`; `npm run bench -- --quick`, `--runs N`,
 * `--only publish,live,durable,cli`). It starts its own redis-server on a free port with no
 * persistence, runs raptor beside its baselines on that same server in the same run, prints one
 * Markdown report with ratios and writes it to bench/RESULTS.md. Every figure is a median of runs.
 * Sections: publish, live, durable, cli, sse (`--only sse` runs the SSE fan-out rows alone).
 */
import {writeFileSync} from 'node:fs'

import {Redis} from 'ioredis'

import {RedisServer} from '../test/helpers/redis-server.js'
import {runCli, type CliResult} from './cli.js'
import {
  runAgentMemory,
  runDurable,
  runDurableLatency,
  type DurableLatency,
  type DurableResult,
} from './durable.js'
import {fmt, machine, markdownTable, median, progress, ratio, settings} from './lib.js'
import {runLive, type LiveResult} from './live.js'
import {renderSse, runSse, type SseResult} from './sse.js'
import {runThroughput, type ThroughputResult} from './throughput.js'

const s = settings()
const wants = (section: string) => s.only.length === 0 || s.only.includes(section)

const server = await RedisServer.start()
const url = server.url
let report = ''
try {
  const probe = new Redis(url)
  const info = await probe.info('server')
  await probe.quit()
  const redisVersion = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown'
  const m = machine(redisVersion)
  progress(`redis-server ${redisVersion} on ${url}; ${s.runs} runs per figure${s.quick ? ' (quick)' : ''}`)

  const throughput = wants('publish') ? await runThroughput(url, s) : []
  const live = wants('live') ? await runLive(url, s) : []
  const durable = wants('durable') ? await runDurable(url, s) : []
  const durableLatency = wants('durable') ? await runDurableLatency(url, s) : undefined
  const memory = wants('durable') ? await runAgentMemory(url, s.quick ? 20_000 : 100_000) : undefined
  const cli = wants('cli') ? runCli(url, server.port, s) : []
  const sse = wants('sse') ? await runSse(url, s) : []
  report = render(m, throughput, live, durable, cli, durableLatency, memory, sse)
} finally {
  await server.stop()
}
process.stdout.write(report + '\n')
writeFileSync(new URL('../../bench/RESULTS.md', import.meta.url), report + '\n')
progress('written to bench/RESULTS.md')
// Client libraries may keep timers or reconnecting sockets alive; the report is written, so end here.
process.exit(0)

function render(
  m: ReturnType<typeof machine>,
  throughput: ThroughputResult[],
  live: LiveResult[],
  durable: DurableResult[],
  cli: CliResult[],
  durableLatency?: DurableLatency,
  memory?: {peakMb: number; eventsPerSec: number},
  sse: SseResult[] = [],
): string {
  const args = process.argv.slice(2).join(' ')
  const out: string[] = [
    '# raptor benchmark results',
    '',
    `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC with \`npm run bench${args ? ` -- ${args}` : ''}\`` +
      ` on ${m.cores} cores (${m.cpu}), ${m.os}, Node ${m.node}, Redis ${m.redis} (its own redis-server, no persistence).`,
    `Each figure is the median of ${s.runs} runs${s.quick ? ' (quick mode: fewer events, shorter runs)' : ''}; ` +
      `payloads are ${s.payloadBytes} bytes of JSON. A shared 2-core machine is noisy: compare ratios within one run.`,
  ]
  const targets: string[][] = []
  const target = (what: string, value: number | undefined, limit: number, higher: boolean) => {
    const met = value !== undefined && Number.isFinite(value) && (higher ? value >= limit : value <= limit)
    targets.push([
      what,
      `${higher ? '≥' : '≤'} ${limit}×`,
      value === undefined || !Number.isFinite(value) ? '–' : `${value.toFixed(2)}×`,
      met ? 'met' : 'NOT met',
    ])
  }

  if (throughput.length > 0) {
    const med = new Map(throughput.map((r) => [r.key, median(r.runs)]))
    const base = med.get('rawScript')
    out.push(
      '',
      `## Publish throughput (one process, ${s.events} events a run, ${s.window} in flight)`,
      '',
      markdownTable(
        ['case', 'events/s (median)', 'min – max', '× raw script', '× BullMQ add'],
        throughput.map((r) =>
          r.skipped
            ? [r.label, `skipped: ${r.skipped}`, '', '', '']
            : [
                r.label,
                fmt(median(r.runs)),
                `${fmt(Math.min(...r.runs))} – ${fmt(Math.max(...r.runs))}`,
                ratio(median(r.runs), base),
                ratio(median(r.runs), med.get('bullAdd')),
              ],
        ),
      ),
    )
    const raptor = med.get('raptorPublish')
    target('raptor publish vs raw one-script XADD+PUBLISH+HINCRBY', raptor! / base!, 0.7, true)
    target('raptor publish vs BullMQ Queue.add', raptor! / med.get('bullAdd')!, 3, true)
  }

  if (live.length > 0) {
    const rows: string[][] = []
    const byKey = new Map(live.map((r) => [r.key, r]))
    for (const r of live) {
      const raw = byKey.get(`raw${r.rate}`)!
      const p50 = median(r.runs.map((x) => x.p50))
      const p99 = median(r.runs.map((x) => x.p99))
      const lost = r.runs.reduce((n, x) => n + (x.sent - x.received), 0)
      rows.push([
        `${fmt(r.rate)}/s`,
        r.label,
        fmt(p50, 3),
        fmt(p99, 3),
        fmt(median(r.runs.map((x) => x.max)), 3),
        ratio(p50, median(raw.runs.map((x) => x.p50))),
        ratio(p99, median(raw.runs.map((x) => x.p99))),
        `${lost} of ${fmt(r.runs.reduce((n, x) => n + x.sent, 0))}`,
      ])
    }
    out.push(
      '',
      `## Live latency (fixed rate for ${s.liveMs / 1000} s; subscriber in its own process; ms from the send timestamp in the payload)`,
      '',
      markdownTable(['rate', 'case', 'p50', 'p99', 'max', 'p50 × raw', 'p99 × raw', 'lost (all runs)'], rows),
    )
    const r10 = byKey.get('raptor10000')
    const raw10 = byKey.get('raw10000')
    if (r10 && raw10) {
      target(
        'live p50 at 10k/s vs raw pub/sub',
        median(r10.runs.map((x) => x.p50)) / median(raw10.runs.map((x) => x.p50)),
        2,
        false,
      )
      target(
        'live p99 at 10k/s vs raw pub/sub',
        median(r10.runs.map((x) => x.p99)) / median(raw10.runs.map((x) => x.p99)),
        2,
        false,
      )
      const lost = [...live].reduce((n, r) => n + r.runs.reduce((k, x) => k + x.sent - x.received, 0), 0)
      targets.push([
        'live events lost (all rates, all runs)',
        '= 0',
        String(lost),
        lost === 0 ? 'met' : 'NOT met',
      ])
    }
  }

  if (durable.length > 0) {
    const base = median(durable.find((r) => r.key === 'rawConsume')?.runs ?? [])
    out.push(
      '',
      `## Durable consume (${s.events} events already in the stream / queue; one consumer process)`,
      '',
      markdownTable(
        ['case', 'events/s (median)', 'min – max', '× raw XREADGROUP'],
        durable.map((r) =>
          r.pending
            ? [r.label, r.pending, '', '']
            : [
                r.label,
                fmt(median(r.runs)),
                `${fmt(Math.min(...r.runs))} – ${fmt(Math.max(...r.runs))}`,
                ratio(median(r.runs), base),
              ],
        ),
      ),
    )
    const med = new Map(durable.map((r) => [r.key, median(r.runs)]))
    target('durable consume vs raw XREADGROUP+XACK+parse', med.get('raptorConsume')! / base, 0.5, true)
    target('durable consume vs BullMQ Worker', med.get('raptorConsume')! / med.get('bullConsume')!, 4, true)
  }

  if (durableLatency) {
    const runs = durableLatency.runs
    const lost = runs.reduce((n, x) => n + x.sent - x.received, 0)
    out.push(
      '',
      `## Durable end-to-end latency (publish → handler start, ${fmt(durableLatency.rate)}/s for ${s.liveMs / 1000} s, one consumer)`,
      '',
      markdownTable(
        ['case', 'p50 ms', 'p99 ms', 'max ms', 'lost (all runs)'],
        [
          [
            'raptor publish → bus.consume handler',
            fmt(median(runs.map((x) => x.p50)), 3),
            fmt(median(runs.map((x) => x.p99)), 3),
            fmt(median(runs.map((x) => x.max)), 3),
            `${lost} of ${fmt(runs.reduce((n, x) => n + x.sent, 0))}`,
          ],
        ],
      ),
    )
  }

  if (memory) {
    out.push(
      '',
      '## Agent memory under a backlog',
      '',
      markdownTable(
        ['case', 'peak RSS MB', 'events/s'],
        [
          [
            `raptor agent, no-op handler, concurrency 100, ${s.quick ? '20k' : '100k'} queued events`,
            fmt(memory.peakMb, 1),
            fmt(memory.eventsPerSec),
          ],
        ],
      ),
    )
    targets.push([
      'agent peak RSS with the backlog',
      '< 150 MB',
      `${memory.peakMb.toFixed(1)} MB`,
      memory.peakMb < 150 ? 'met' : 'NOT met',
    ])
  }

  if (cli.length > 0) {
    const ms = new Map(cli.map((r) => [r.key, r.ms]))
    out.push(
      '',
      `## CLI wall time (${cli[0].tool === 'hyperfine' ? `hyperfine, ${s.cliRuns} runs after 3 warm-ups` : `median of ${s.cliRuns} spawns after 3 warm-ups`})`,
      '',
      markdownTable(
        ['command', 'ms (median)', '× node -e 0', '× minimal oclif publish'],
        cli.map((r) => [r.label, fmt(r.ms, 1), ratio(r.ms, ms.get('nodeE0')), ratio(r.ms, ms.get('mini'))]),
      ),
    )
    target(
      '`raptor publish` wall time vs minimal oclif publish',
      ms.get('raptorPublish')! / ms.get('mini')!,
      1.3,
      false,
    )
  }

  if (sse.length > 0) out.push(...renderSse(sse, s))

  if (targets.length > 0)
    out.push('', '## Targets', '', markdownTable(['target', 'limit', 'measured', ''], targets))
  return out.join('\n')
}
