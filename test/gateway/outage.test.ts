import {Redis} from 'ioredis'
import {afterEach, describe, expect, it} from 'vitest'
import {WebSocket} from 'ws'

import {RaptorBus} from '../../src/bus/index.js'
import type {Gateway} from '../../src/gateway/server.js'
import {sse, startTestGateway, type SseClient} from '../helpers/gateway.js'
import {randomPrefix, startCli, waitFor, type RunningCli} from '../helpers/index.js'
import {RedisServer, freePort} from '../helpers/redis-server.js'

// Redis goes away under live SSE and WebSocket clients, with a real redis-server: the gateway resumes
// every stream from history when Redis is back (no gap, no duplicate), and tells the clients how many
// events it lost when history no longer has them.

const cleanup: (() => unknown)[] = []
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!()
})

async function server(): Promise<RedisServer> {
  const s = await RedisServer.start()
  cleanup.push(() => s.stop(true))
  return s
}

async function connect(s: RedisServer, prefix: string): Promise<RaptorBus> {
  const b = await RaptorBus.connect({redisUrl: s.url, prefix})
  cleanup.push(() => b.close())
  return b
}

async function sseClient(url: string): Promise<SseClient> {
  const c = await sse(url)
  cleanup.push(() => c.close())
  await waitFor(() => c.live, 10_000, 'the stream to be live')
  return c
}

/** A WebSocket subscribed to `pattern`; its messages, parsed. */
async function wsClient(url: string, pattern: string) {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/ws`)
  cleanup.push(() => socket.terminate())
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON under test, checked by expect
  const messages: Record<string, any>[] = []
  socket.on('message', (data) => messages.push(JSON.parse(String(data))))
  await new Promise((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
  })
  socket.send(JSON.stringify({op: 'subscribe', id: 's1', patterns: [pattern]}))
  await waitFor(() => messages.some((m) => m.op === 'subscribed'), 10_000, 'subscribed')
  return {
    messages,
    seqs: () => messages.filter((m) => m.op === 'event').map((m) => m.event.data.seq as number),
  }
}

const sseSeqs = (c: SseClient) => c.events().map((e) => (e.data as {seq: number}).seq)
const range = (from: number, to: number) => Array.from({length: to - from + 1}, (_, i) => from + i)

describe('a Redis outage under live clients', () => {
  it('raptor serve logs the loss and the reconnection, and its SSE and WebSocket clients get every event once across a Redis restart', async () => {
    const s = await server()
    const prefix = randomPrefix()
    const port = await freePort()
    const cli: RunningCli = startCli(
      ['serve', '--port', String(port), '--redis-url', s.url, '--prefix', prefix],
      {
        timeoutMs: 90_000,
      },
    )
    cleanup.push(async () => {
      cli.child.kill('SIGKILL')
      await cli.exited
    })
    await waitFor(() => cli.stderr.includes('serve: listening on'), 15_000, 'listening')
    const url = `http://127.0.0.1:${port}`
    const sseC = await sseClient(`${url}/v1/stream?pattern=sys.state.update`)
    const wsC = await wsClient(url, 'sys.state.update')
    let seq = 0
    const before = await connect(s, prefix)
    for (; seq < 10; seq++) await before.publish({channel: 'sys.state.update', type: 'seq', payload: {seq}})
    await waitFor(() => sseSeqs(sseC).length === 10 && wsC.seqs().length === 10, 10_000, 'the first events')

    // Redis restarts (losing its data) after 1.6 s down: the gateway's reconnection attempts back off
    // (0.1, 0.3, 0.7, 1.5, then 3.1 s after the loss), so events are published from the moment it is
    // back, before the gateway's subscriber has reconnected, and after.
    await s.stop(true)
    await new Promise((r) => setTimeout(r, 1600))
    await s.start()
    const after = await connect(s, prefix)
    const started = Date.now()
    while (Date.now() - started < 500 || !cli.stderr.includes('redis: reconnected')) {
      await after.publish({channel: 'sys.state.update', type: 'seq', payload: {seq: seq++}})
      await new Promise((r) => setTimeout(r, 5))
      if (Date.now() - started > 20_000) throw new Error(`serve did not reconnect: ${cli.stderr}`)
    }
    for (let i = 0; i < 20; i++)
      await after.publish({channel: 'sys.state.update', type: 'seq', payload: {seq: seq++}})
    const last = seq - 1
    await waitFor(
      () => sseSeqs(sseC).at(-1) === last && wsC.seqs().at(-1) === last,
      15_000,
      `events up to ${last}`,
    ).catch((error: Error) => {
      throw new Error(`${error.message}: SSE got ${sseSeqs(sseC).length}, WS ${wsC.seqs().length}`)
    })
    expect(sseSeqs(sseC)).toEqual(range(0, last))
    expect(wsC.seqs()).toEqual(range(0, last))
    expect(cli.stderr).toMatch(/redis: connection lost \(.+\).*\n(.*\n)*.*redis: reconnected/)
  })

  it('events that history no longer holds are counted to the clients (SSE event "gap", WebSocket op "gap")', async () => {
    const s = await server()
    const prefix = randomPrefix()
    const started: {gateway?: Gateway} = {}
    const b = await RaptorBus.connect({
      redisUrl: s.url,
      prefix,
      onConnectionChange: (change) => started.gateway?.connectionChanged(change),
    })
    cleanup.push(() => b.close())
    const g = await startTestGateway(b)
    started.gateway = g
    cleanup.push(() => g.close())
    const sseC = await sseClient(`${g.url}/v1/stream?pattern=sys.state.update`)
    const wsC = await wsClient(g.url, 'sys.state.update')
    const publish = (seq: number) => b.publish({channel: 'sys.state.update', type: 'seq', payload: {seq}})
    for (let seq = 0; seq < 3; seq++) await publish(seq)
    await waitFor(() => sseSeqs(sseC).length === 3 && wsC.seqs().length === 3, 10_000, 'the first events')

    // Redis cuts the gateway's subscriber off; 10 events are published and then trimmed away
    // before it is back (it waits at least 100 ms before reconnecting).
    const admin = new Redis(s.url)
    cleanup.push(() => admin.disconnect())
    await admin.client('KILL', 'TYPE', 'pubsub')
    for (let seq = 3; seq < 13; seq++) await publish(seq)
    await admin.del(b.keys.stream('sys.state.update'))

    await waitFor(
      () => sseC.messages.some((m) => m.event === 'gap') && wsC.messages.some((m) => m.op === 'gap'),
      15_000,
      'the gap notices',
    )
    const gap = JSON.parse(sseC.messages.find((m) => m.event === 'gap')!.data) as {missed: number}
    expect(gap.missed).toBe(10)
    expect(wsC.messages.find((m) => m.op === 'gap')).toMatchObject({op: 'gap', id: 's1', missed: 10})
    // And the streams go on.
    for (let seq = 13; seq < 16; seq++) await publish(seq)
    await waitFor(
      () => sseSeqs(sseC).at(-1) === 15 && wsC.seqs().at(-1) === 15,
      10_000,
      'events after the gap',
    )
    expect(sseSeqs(sseC)).toEqual([0, 1, 2, 13, 14, 15])
    expect(wsC.seqs()).toEqual([0, 1, 2, 13, 14, 15])
  })
})
