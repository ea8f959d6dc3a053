/**
 * The receiving side of the SSE fan-out rows, run as its own process (fork): N Server-Sent Events
 * clients of `raptor serve`, or one `raptor tail --json` process, each event timed from the send
 * timestamp in its payload. IPC: in `{mode, n, url | tail}`, out `{ready}` once every client is
 * subscribed; in `{stop: expected}`, out the report once every client has all events (or none came
 * for 10 s: a server that falls behind is still delivering its backlog).
 */
import {spawn} from 'node:child_process'
import {Agent, request} from 'node:http'

import {Histogram, nowMicros, type LatencySummary} from '../src/cli/histogram.js'

export type ClientsStart = {mode: 'sse'; n: number; url: string} | {mode: 'tail'; bin: string; args: string[]}

export interface ClientsReport {
  /** Events received, summed over clients. */
  received: number
  /** Clients that read an `event: dropped` (the server's count is in its /metrics). */
  dropped: number
  /** Clients that had not received every event when the receivers stopped. */
  incomplete: number
  /** Time spent waiting for events that did not come (the idle timeout), ms. */
  idleMs: number
  latency: LatencySummary
}

/** Clients whose every event is timed; the others only count theirs (the parsing would be the bottleneck). */
const TIMED = 100
const TS = '"ts":'
/** The receivers stop once this long passes with no event. */
const IDLE_MS = 10_000

const histogram = new Histogram()
const counts: number[] = []
let dropped = 0
let stop: () => void = () => {}

/** Reads the send timestamps out of a chunk of SSE or NDJSON text; returns the events seen. */
function scan(text: string, timed: boolean): number {
  let n = 0
  let at = text.indexOf(TS)
  while (at >= 0) {
    n++
    if (timed) {
      const start = at + TS.length
      let end = start
      while (end < text.length && text.charCodeAt(end) >= 48 && text.charCodeAt(end) <= 57) end++
      if (end > start && end < text.length) histogram.record(nowMicros() - Number(text.slice(start, end)))
    }
    at = text.indexOf(TS, at + TS.length)
  }
  return n
}

async function startSse(n: number, url: string): Promise<void> {
  const agent = new Agent({keepAlive: false, maxSockets: Infinity})
  const requests: ReturnType<typeof request>[] = []
  await Promise.all(
    Array.from(
      {length: n},
      (_, i) =>
        new Promise<void>((resolve, reject) => {
          counts[i] = 0
          const req = request(url, {agent, headers: {accept: 'text/event-stream'}}, (res) => {
            if (res.statusCode !== 200) return reject(new Error(`client ${i}: HTTP ${res.statusCode}`))
            res.setEncoding('utf8')
            let started = false
            let tail = ''
            res.on('data', (chunk: string) => {
              // A timestamp split across chunks is read once the rest arrives.
              const text = tail + chunk
              const cut = text.lastIndexOf('\n')
              tail = text.slice(cut + 1)
              const whole = text.slice(0, cut + 1)
              // `: live` once the server has sent the history and joined the stream's fan-out group.
              if (!started && whole.includes(': live')) {
                started = true
                resolve()
              }
              if (whole.includes('event: dropped')) dropped++
              counts[i] += scan(whole, i < TIMED)
            })
          })
          req.on('error', reject)
          req.end()
          requests.push(req)
        }),
    ),
  )
  stop = () => requests.forEach((r) => r.destroy())
}

async function startTail(bin: string, args: string[]): Promise<void> {
  counts[0] = 0
  const child = spawn(process.execPath, [bin, 'tail', '--json', ...args], {stdio: ['ignore', 'pipe', 'pipe']})
  child.stdout.setEncoding('utf8')
  let tail = ''
  child.stdout.on('data', (chunk: string) => {
    const text = tail + chunk
    const cut = text.lastIndexOf('\n')
    tail = text.slice(cut + 1)
    counts[0] += scan(text.slice(0, cut + 1), true)
  })
  let stderr = ''
  await new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (d) => {
      stderr += d
      if (stderr.includes('tail: listening on')) resolve()
      // tail's one reader counts as dropped once it says it dropped events for it.
      dropped = /tail: dropped \d+/.test(stderr) ? 1 : 0
    })
    child.on('exit', (code) => reject(new Error(`raptor tail exited ${code}: ${stderr}`)))
  })
  stop = () => child.kill('SIGINT')
}

process.on('message', async (message: ClientsStart | {stop: number}) => {
  if ('mode' in message) {
    if (message.mode === 'sse') await startSse(message.n, message.url)
    else await startTail(message.bin, message.args)
    process.send!({ready: true})
    return
  }
  const expected = message.stop
  let last = -1
  let idleSince = Date.now()
  const total = () => counts.reduce((a, b) => a + b, 0)
  while (counts.some((c) => c < expected) && Date.now() - idleSince < IDLE_MS) {
    await new Promise((r) => setTimeout(r, 10))
    if (total() !== last) {
      last = total()
      idleSince = Date.now()
    }
  }
  const idleMs = counts.some((c) => c < expected) ? Date.now() - idleSince : 0
  stop()
  const report: ClientsReport = {
    received: total(),
    dropped,
    incomplete: counts.filter((c) => c < expected).length,
    idleMs,
    latency: histogram.summary(),
  }
  process.send!(report, () => process.exit(0))
})
