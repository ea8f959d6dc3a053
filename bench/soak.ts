/**
 * Soak of durable delivery (issue 8): sequenced events through real `raptor agent` processes, one of
 * them killed -9 every few seconds (and replaced), plus poison events that kill the process that runs
 * them. Every handler start and finish is appended to a per-process log by the plugin
 * (bench/fixtures/soak-plugin.mjs), so the figures are computed from what really ran:
 *
 * - lost: events neither handled nor dead-lettered (must be 0)
 * - innocent dead-lettered: events other than the poison ones in a DLQ (must be 0)
 * - duplicates: extra completions of an event (at-least-once: counted, not an error)
 * - ack window: events that had finished in a process when it died and ran again elsewhere
 * - reclaim latency: for each event an agent took over (its log says so), from the death of the agent
 *   that held it to its next start (or its dead-lettering), with the others working through a backlog
 *   (max must be <= 30 s)
 *
 * npm run soak -- [--events 50000] [--agents 3] [--kill-every 5000] [--poisons 8] [--handler-ms 10]
 *                 [--concurrency 8] [--redis-url URL] [--timeout-min 30] [--json]
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {closeSync, mkdtempSync, openSync, readFileSync, readdirSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {RaptorBus} from '../src/bus/index.js'
import {RedisServer} from '../test/helpers/redis-server.js'

const argv = process.argv.slice(2)
const flag = (name: string, fallback: number): number => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? Number(argv[i + 1]) : fallback
}
const EVENTS = flag('events', 50_000)
const AGENTS = flag('agents', 3)
const KILL_EVERY_MS = flag('kill-every', 5000)
const POISONS = flag('poisons', 8)
const HANDLER_MS = flag('handler-ms', 10)
const CONCURRENCY = flag('concurrency', 8)
const TIMEOUT_MS = flag('timeout-min', 30) * 60_000
const JSON_OUT = argv.includes('--json')
const urlFlag = argv.indexOf('--redis-url')

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url))
const BIN = root('bin/run.js')
const PLUGIN = root('bench/fixtures/soak-plugin.mjs')
const CHANNEL = 'sys.state.update'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const say = (line: string) => process.stderr.write(`soak: ${line}\n`)

interface Agent {
  id: string
  child: ChildProcess
  log: string
  started: Promise<void>
  exited: Promise<number | null>
  killed: boolean
}

interface Death {
  agent: string
  at: number
  cause: 'kill -9' | 'poison'
  /** Consumer-group lag (events not yet delivered) at the time. */
  backlog?: number
}

async function main(): Promise<void> {
  const server = urlFlag >= 0 ? undefined : await RedisServer.start()
  const redisUrl = urlFlag >= 0 ? argv[urlFlag + 1] : server!.url
  const prefix = `soak${randomBytes(4).toString('hex')}`
  const dir = mkdtempSync(join(tmpdir(), 'raptor-soak-'))
  const bus = await RaptorBus.connect({redisUrl, prefix})
  const deaths: Death[] = []
  const agents: (Agent | undefined)[] = []
  let generation = 0
  let stopping = false

  const lag = async (): Promise<number> => {
    const groups = (await bus.redis.xinfo('GROUPS', bus.keys.stream(CHANNEL)).catch(() => [])) as unknown[][]
    const g = groups.find((x) => x[x.indexOf('name') + 1] === 'soak')
    return g ? Number(g[g.indexOf('lag') + 1]) : EVENTS
  }

  const start = (slot: number): Agent => {
    const id = `soak-${slot}-${++generation}`
    const log = join(dir, `${id}.log`)
    const out = openSync(join(dir, `${id}.out`), 'w')
    const child = spawn(
      process.execPath,
      [BIN, 'agent', '--json', '--plugin', PLUGIN, '--id', id, '--concurrency', String(CONCURRENCY)],
      {
        env: {
          ...process.env,
          REDIS_URL: redisUrl,
          RAPTOR_PREFIX: prefix,
          SOAK_LOG: log,
          SOAK_HANDLER_MS: String(HANDLER_MS),
          NO_COLOR: '1',
        },
        stdio: ['ignore', out, 'pipe'],
      },
    )
    closeSync(out)
    let stderr = ''
    child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-20_000)))
    const started = (async () => {
      while (!readFileSync(join(dir, `${id}.out`), 'utf8').includes(`agent ${id} started`)) await sleep(100)
    })()
    const agent: Agent = {
      id,
      child,
      log,
      started,
      killed: false,
      exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))),
    }
    void agent.exited.then(async (code) => {
      if (agents[slot] === agent) agents[slot] = undefined
      if (code === 3) deaths.push({agent: id, at: Date.now(), cause: 'poison'})
      else if (!agent.killed && !stopping) say(`agent ${id} exited with ${code}: ${stderr.slice(-500)}`)
      if (!stopping) agents[slot] = start(slot)
    })
    return agent
  }

  const begun = Date.now()
  for (let slot = 0; slot < AGENTS; slot++) agents[slot] = start(slot)
  await Promise.all(agents.map((a) => a!.started))
  // The poison events are spread evenly through the sequence.
  const poison = new Set(Array.from({length: POISONS}, (_, i) => Math.floor(((i + 0.5) * EVENTS) / POISONS)))
  const ids: string[] = []
  for (let from = 0; from < EVENTS; from += 1000) {
    const batch = Array.from({length: Math.min(1000, EVENTS - from)}, (_, k) => {
      const seq = from + k
      return {channel: CHANNEL, type: 'soak', payload: poison.has(seq) ? {seq, poison: true} : {seq}}
    })
    ids.push(...(await bus.publishMany(batch)))
  }
  say(
    `published ${EVENTS} events (${POISONS} poison) to ${AGENTS} agents; killing one every ${KILL_EVERY_MS} ms`,
  )

  // Kill an agent every few seconds while there is a backlog.
  let kills = 0
  const killer = (async () => {
    for (;;) {
      await sleep(KILL_EVERY_MS)
      const backlog = await lag()
      if (stopping || backlog === 0) return
      const live = agents.filter((a): a is Agent => a !== undefined && !a.killed)
      const victim = live[Math.floor(Math.random() * live.length)]
      if (!victim) continue
      await victim.started
      victim.killed = true
      victim.child.kill('SIGKILL')
      deaths.push({agent: victim.id, at: Date.now(), cause: 'kill -9', backlog})
      kills++
    }
  })()

  // Done when every event was delivered and has an outcome (nothing pending, nothing unread).
  const deadline = begun + TIMEOUT_MS
  const lagTimeline: {at: number; lag: number}[] = []
  let last = 0
  for (;;) {
    await sleep(1000)
    const [backlog, pendingReply] = await Promise.all([
      lag(),
      bus.redis.xpending(bus.keys.stream(CHANNEL), 'soak'),
    ])
    const pending = Number((pendingReply as [number])[0])
    lagTimeline.push({at: Date.now(), lag: backlog})
    if (Date.now() - last > 10_000) {
      last = Date.now()
      say(
        `${Math.round((Date.now() - begun) / 1000)} s: backlog ${backlog}, pending ${pending}, deaths ${deaths.length}`,
      )
    }
    if (backlog === 0 && pending === 0) break
    if (Date.now() > deadline) {
      say('timed out before every event had an outcome')
      break
    }
  }
  stopping = true
  await killer
  const live = agents.filter((a): a is Agent => a !== undefined)
  for (const a of live) a.child.kill('SIGTERM')
  await Promise.all(live.map((a) => a.exited))
  const elapsedMs = Date.now() - begun

  // What ran, from the plugins' logs (`<id>.log`), and what was taken over, from the agents' (`<id>.out`).
  type Mark = {kind: string; seq: number; at: number; agent: string}
  const marks: Mark[] = []
  const seqOf = new Map(ids.map((id, seq) => [id, seq]))
  for (const file of readdirSync(dir)) {
    const agent = file.replace(/\.(log|out)$/, '')
    const text = readFileSync(join(dir, file), 'utf8')
    if (file.endsWith('.log')) {
      for (const raw of text.split('\n')) {
        const [kind, seq, , at] = raw.split(' ')
        if (kind) marks.push({kind, seq: Number(seq), at: Number(at), agent})
      }
    } else {
      for (const raw of text.split('\n')) {
        if (!raw.includes('took over')) continue
        const l = JSON.parse(raw) as {time: string; event?: string}
        const seq = seqOf.get(l.event ?? '')
        if (seq !== undefined) marks.push({kind: 'c', seq, at: Date.parse(l.time), agent})
      }
    }
  }
  marks.sort((a, b) => a.at - b.at)
  const dead = new Map<number, number>()
  for (const reason of ['max_retries_exceeded', 'processing_timeout', 'schema_violation'] as const) {
    const entries = (await bus.redis.xrange(bus.keys.dlq(CHANNEL, reason), '-', '+')) as [string, string[]][]
    for (const [, flat] of entries) {
      const f: Record<string, string> = {}
      for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i]] = flat[i + 1]
      dead.set((JSON.parse(f.e) as {data: {seq: number}}).data.seq, Number(f.failedAt))
    }
  }
  const done = new Map<number, number>()
  for (const m of marks) if (m.kind === 'd') done.set(m.seq, (done.get(m.seq) ?? 0) + 1)
  let lost = 0
  let duplicates = 0
  for (let seq = 0; seq < EVENTS; seq++) {
    if (poison.has(seq)) {
      if (!dead.has(seq)) lost++
    } else if (!done.has(seq) && !dead.has(seq)) lost++
    duplicates += Math.max(0, (done.get(seq) ?? 0) - 1)
  }
  const innocentDead = [...dead.keys()].filter((s) => !poison.has(s))

  // Reclaim latency: an event taken over (a `c` mark) runs again (`s`) or is given up (dead-lettered)
  // after the death of the agent that held it before; measured from that death.
  const diedAt = new Map(deaths.map((d) => [d.agent, d.at]))
  const bySeq = new Map<number, Mark[]>()
  for (const m of marks) if (m.kind !== 'd') bySeq.set(m.seq, [...(bySeq.get(m.seq) ?? []), m])
  const latencies: number[] = []
  const samples: {ms: number; seq: number; from: string; to: string; backlog: number}[] = []
  for (const [seq, history] of bySeq) {
    history.forEach((claim, i) => {
      if (claim.kind !== 'c') return
      const before = history
        .slice(0, i)
        .reverse()
        .find((m) => m.agent !== claim.agent)
      const death = before && diedAt.get(before.agent)
      if (death === undefined) return
      // Its next run here, or its dead-lettering here (given up: nothing happened to it after the claim);
      // when this agent died before running it, the next takeover measures from that death.
      const next = history[i + 1]
      const failedAt = dead.get(seq)
      const at =
        next === undefined
          ? failedAt !== undefined && failedAt >= claim.at
            ? failedAt
            : undefined
          : next.agent === claim.agent && next.kind === 's'
            ? next.at
            : undefined
      if (at === undefined) return
      latencies.push(at - death)
      // The backlog when it was taken over (the last lag sampled before).
      const backlog = lagTimeline.filter((l) => l.at <= claim.at).pop()?.lag ?? EVENTS
      samples.push({ms: at - death, seq, from: before!.agent, to: claim.agent, backlog})
    })
  }
  // The ack window: events that had finished in an agent when it died and ran again elsewhere.
  const caught: number[] = deaths.map((d) => {
    const finished = new Set(marks.filter((m) => m.agent === d.agent && m.kind === 'd').map((m) => m.seq))
    return [...finished].filter((seq) =>
      (bySeq.get(seq) ?? []).some((m) => m.kind === 's' && m.agent !== d.agent && m.at >= d.at),
    ).length
  })
  const stats = await bus.redis.hgetall(bus.keys.handlerStats(CHANNEL, 'soak'))
  const backlogs = deaths.filter((d) => d.backlog !== undefined).map((d) => d.backlog!)
  const report = {
    events: EVENTS,
    poisonEvents: POISONS,
    agents: AGENTS,
    concurrency: CONCURRENCY,
    handlerMs: HANDLER_MS,
    elapsedS: Math.round(elapsedMs / 1000),
    kills,
    poisonCrashes: deaths.filter((d) => d.cause === 'poison').length,
    lost,
    innocentDeadLettered: innocentDead.length,
    poisonDeadLettered: [...dead.keys()].filter((s) => poison.has(s)).length,
    duplicates,
    ackWindow: {totalCaught: caught.reduce((a, b) => a + b, 0), maxPerDeath: Math.max(0, ...caught)},
    reclaimLatencyMs: {
      max: Math.max(0, ...latencies),
      median: latencies.sort((a, b) => a - b)[Math.floor(latencies.length / 2)] ?? 0,
      samples: latencies.length,
      slowest: samples.sort((a, b) => b.ms - a.ms).slice(0, 3),
      underBacklog: {
        max: Math.max(0, ...samples.filter((x) => x.backlog > 0).map((x) => x.ms)),
        samples: samples.filter((x) => x.backlog > 0).length,
      },
    },
    backlogAtKills: {min: backlogs.length > 0 ? Math.min(...backlogs) : 0, max: Math.max(0, ...backlogs)},
    counters: {
      acked: Number(stats.acked ?? 0),
      deadLettered: Number(stats.deadLettered ?? 0),
      duplicates: Number(stats.duplicates ?? 0),
    },
  }
  const ok = lost === 0 && innocentDead.length === 0 && report.reclaimLatencyMs.max <= 30_000
  if (JSON_OUT) process.stdout.write(JSON.stringify({ok, ...report}) + '\n')
  else {
    const lat = report.reclaimLatencyMs
    process.stdout.write(
      [
        `soak: ${EVENTS} events (${POISONS} poison), ${AGENTS} agents x concurrency ${CONCURRENCY}, handler ${HANDLER_MS} ms, ${report.elapsedS} s`,
        `  deaths: ${kills} kill -9, ${report.poisonCrashes} poison crashes (backlog at kills ${report.backlogAtKills.min}..${report.backlogAtKills.max})`,
        `  lost ${lost}   innocent dead-lettered ${innocentDead.length}   poison dead-lettered ${report.poisonDeadLettered}/${POISONS}`,
        `  duplicates ${duplicates}   ack window: ${report.ackWindow.totalCaught} finished events caught by a death (max ${report.ackWindow.maxPerDeath} per death)`,
        `  reclaim latency: max ${(lat.max / 1000).toFixed(1)} s, median ${(lat.median / 1000).toFixed(1)} s over ${lat.samples} events ` +
          `(${lat.underBacklog.samples} taken over under a backlog: max ${(lat.underBacklog.max / 1000).toFixed(1)} s)`,
        `  ${ok ? 'PASS' : 'FAIL'}`,
      ].join('\n') + '\n',
    )
  }
  await bus.close()
  await server?.stop()
  process.exitCode = ok ? 0 : 1
}

await main()
