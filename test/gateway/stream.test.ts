import {connect} from 'node:net'

import {afterEach, describe, expect, it} from 'vitest'
import {WebSocket} from 'ws'

import type {RaptorBus} from '../../src/bus/index.js'
import type {GatewayLimits} from '../../src/gateway/context.js'
import {sse, startTestGateway, type SseClient} from '../helpers/gateway.js'
import {testBuses, waitFor} from '../helpers/index.js'

const bus = testBuses()
const open: {close(): unknown}[] = []
afterEach(async () => {
  while (open.length > 0) await open.pop()!.close()
})

async function setup(limits: Partial<GatewayLimits> = {}) {
  const b = await bus()
  const g = await startTestGateway(b, {limits})
  open.push(g)
  return {bus: b, gateway: g, url: g.url}
}

async function client(url: string, headers?: Record<string, string>): Promise<SseClient> {
  const c = await sse(url, headers)
  open.push(c)
  // The first message carries only an id: the stream is subscribed once it has arrived.
  await waitFor(() => c.lastEventId !== undefined, 5000, 'the first id')
  return c
}

function publish(b: RaptorBus, channel: string, type: string, data: Record<string, unknown> = {}) {
  return b.publish({channel, type, payload: data})
}

/** A WebSocket whose messages (parsed) are collected. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON under test, checked by expect
async function ws(url: string): Promise<{socket: WebSocket; messages: Record<string, any>[]}> {
  const socket = new WebSocket(url.replace(/^http/, 'ws'))
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON under test, checked by expect
  const messages: Record<string, any>[] = []
  socket.on('message', (data) => messages.push(JSON.parse(String(data))))
  await new Promise((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
  })
  open.push({close: () => socket.terminate()})
  return {socket, messages}
}

describe('GET /v1/stream (Server-Sent Events)', () => {
  it('streams live events matching pattern, type and a where filter', async () => {
    const {bus: b, url} = await setup()
    const c = await client(
      `${url}/v1/stream?pattern=sys.state.update&type=state&where=${encodeURIComponent('data.user_id == "u1" && data.n >= 2')}`,
    )
    expect(c.response.headers['content-type']).toBe('text/event-stream; charset=utf-8')
    await publish(b, 'sys.state.update', 'state', {user_id: 'u1', n: 1})
    await publish(b, 'sys.state.update', 'state', {user_id: 'u2', n: 5})
    await publish(b, 'sys.state.update', 'other', {user_id: 'u1', n: 5})
    await publish(b, 'sys.alert.warning', 'state', {user_id: 'u1', n: 5})
    await publish(b, 'sys.state.update', 'state', {user_id: 'u1', n: 2})
    await waitFor(() => c.events().length === 1, 5000, 'the one matching event')
    expect(c.events()[0]).toMatchObject({type: 'state', data: {user_id: 'u1', n: 2}})
    // Every event's id is the cursor after it.
    expect(c.messages[0].id).toMatch(/^\d+,sys\.state\.update@\d+-\d+$/)
  })

  it('400 with the reason for a bad pattern, filter, priority or Last-Event-ID', async () => {
    const {url} = await setup()
    const bad = async (query: string, headers: Record<string, string> = {}) => {
      const res = await fetch(`${url}/v1/stream?${query}`, {headers})
      expect(res.status, query).toBe(400)
      return ((await res.json()) as {error: {message: string}}).error.message
    }
    expect(await bad('pattern=Sys.Alert')).toMatch(/invalid channel pattern/)
    expect(await bad(`where=${encodeURIComponent('data.x = 1')}`)).toMatch(/invalid filter .*compare with ==/)
    expect(await bad(`where=${encodeURIComponent('process.exit(1)')}`)).toMatch(
      /function calls are not supported/,
    )
    expect(await bad('priority=urgent')).toMatch(/invalid priority 'urgent'/)
    expect(await bad('', {'last-event-id': 'yesterday'})).toMatch(/invalid Last-Event-ID/)
  })

  it('since= backfills history first, then live, seamlessly', async () => {
    const {bus: b, url} = await setup()
    for (let i = 0; i < 3; i++) await publish(b, 'sys.state.update', `old${i}`)
    const c = await client(`${url}/v1/stream?pattern=sys.state.update&since=1m`)
    await publish(b, 'sys.state.update', 'new')
    await waitFor(() => c.events().length === 4, 5000, 'history and live')
    expect(c.events().map((e) => e.type)).toEqual(['old0', 'old1', 'old2', 'new'])
  })

  it('Last-Event-ID resumes across channels with no gap and no duplicate while publishing goes on', async () => {
    const {bus: b, url} = await setup()
    const first = await client(`${url}/v1/stream?pattern=sys.**`)
    const channels = ['sys.state.update', 'sys.alert.warning', 'sys.alert.critical']
    let sent = 0
    let publishing = true
    const publisher = (async () => {
      // Bursts of one publish per channel at once: same-millisecond entries on several channels.
      while (publishing && sent < 3000)
        await Promise.all(channels.map((channel) => publish(b, channel, 'seq', {seq: sent++})))
    })()
    await waitFor(() => first.events().length >= 100, 10_000, 'events before the disconnect')
    first.close()
    const resumeFrom = first.lastEventId!
    const before = first.events()
    await waitFor(() => sent >= before.length + 300, 10_000, 'events while disconnected')
    const second = await client(`${url}/v1/stream?pattern=sys.**`, {'last-event-id': resumeFrom})
    await waitFor(() => second.events().length >= 100, 10_000, 'events after the resume')
    publishing = false
    await publisher
    const seqsOf = () => [...before, ...second.events()].map((e) => (e.data as {seq: number}).seq)
    await waitFor(() => seqsOf().length >= sent, 10_000, `all ${sent} events`).catch((error: Error) => {
      const got = new Set(seqsOf())
      const missing = Array.from({length: sent}, (_, i) => i).filter((i) => !got.has(i))
      throw new Error(
        `${error.message}: ${missing.length} missing (${missing.slice(0, 20).join(',')}), before ${before.length}, after ${second.events().length}, resumed from ${resumeFrom}`,
      )
    })
    const seqs = seqsOf()
    expect(seqs.length).toBe(sent)
    expect(new Set(seqs).size).toBe(sent)
    expect([...seqs].sort((x, y) => x - y)).toEqual(Array.from({length: sent}, (_, i) => i))
  })

  it('a client that stops reading is dropped with the reason; the server holds at most its buffer', async () => {
    const limit = 64 * 1024
    const {bus: b, gateway, url} = await setup({clientBufferBytes: limit, dropGraceMs: 60_000})
    const {port} = new URL(url)
    const socket = connect(Number(port), '127.0.0.1')
    open.push({close: () => socket.destroy()})
    let received = ''
    socket.on('data', (d) => (received += d))
    socket.write(`GET /v1/stream?pattern=sys.state.update HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    await waitFor(() => received.includes('id: '), 5000, 'the stream to start')
    socket.pause() // and never read again
    const blob = 'x'.repeat(32 * 1024)
    const dropped = () => gateway.log.lines.find((l) => l.includes('dropped SSE client'))
    for (let i = 0; i < 2000 && !dropped(); i++) await publish(b, 'sys.state.update', 'big', {i, blob})
    const line = await waitFor(dropped, 10_000, 'the drop')
    const unread = Number(/slow consumer: (\d+) bytes unread/.exec(line)![1])
    // The server stopped at the first event past its bound: never more than one event over it.
    expect(unread).toBeGreaterThan(limit)
    expect(unread).toBeLessThan(limit + blob.length + 1024)
    // Other clients are served as before.
    const other = await client(`${url}/v1/stream?pattern=sys.state.update`)
    await publish(b, 'sys.state.update', 'after')
    await waitFor(
      () => other.events().some((e) => e.type === 'after'),
      5000,
      'a live event for the other client',
    )
    // The slow client, reading again, gets what was queued, then the reason, then the end.
    const ended = new Promise((resolve) => socket.on('end', resolve))
    socket.resume()
    await ended
    expect(received).toMatch(
      /event: dropped\ndata: \{"reason":"slow consumer: \d+ bytes unread \(limit 65536\)"\}\n\n/,
    )
    const metrics = await (await fetch(`${url}/metrics`)).text()
    expect(metrics).toMatch(
      /raptor_gateway_clients_dropped_total\{transport="sse",reason="slow_consumer"\} 1/,
    )
  })
})

describe('GET /v1/ws (WebSocket)', () => {
  it('subscribe and unsubscribe with per-connection filters: each user sees only their own updates', async () => {
    const {bus: b, url} = await setup()
    const u1 = await ws(`${url}/v1/ws`)
    const u2 = await ws(
      `${url}/v1/ws?pattern=sys.state.update&where=${encodeURIComponent('data.user_id == "u2"')}`,
    )
    u1.socket.send(
      JSON.stringify({
        op: 'subscribe',
        id: 'mine',
        patterns: ['sys.state.update'],
        where: 'data.user_id == "u1"',
      }),
    )
    await waitFor(() => u1.messages.some((m) => m.op === 'subscribed'), 5000, 'u1 subscribed')
    await waitFor(
      () => u2.messages.some((m) => m.op === 'subscribed' && m.id === 'default'),
      5000,
      'u2 subscribed',
    )
    for (const user of ['u1', 'u2', 'u3', 'u1'])
      await publish(b, 'sys.state.update', 'state', {user_id: user})
    await waitFor(() => u1.messages.filter((m) => m.op === 'event').length === 2, 5000, 'u1 events')
    await waitFor(() => u2.messages.filter((m) => m.op === 'event').length === 1, 5000, 'u2 events')
    const e1 = u1.messages.filter((m) => m.op === 'event')
    expect(e1.map((m) => [m.id, m.event.data.user_id])).toEqual([
      ['mine', 'u1'],
      ['mine', 'u1'],
    ])
    expect(e1[1].cursor).toMatch(/^\d+,sys\.state\.update@\d+-\d+$/)

    u1.socket.send(JSON.stringify({op: 'unsubscribe', id: 'mine'}))
    await waitFor(
      () => u1.messages.some((m) => m.op === 'unsubscribed' && m.id === 'mine'),
      5000,
      'unsubscribed',
    )
    await publish(b, 'sys.state.update', 'state', {user_id: 'u1'})
    await publish(b, 'sys.state.update', 'state', {user_id: 'u2'})
    await waitFor(() => u2.messages.filter((m) => m.op === 'event').length === 2, 5000, 'u2 second event')
    expect(u1.messages.filter((m) => m.op === 'event')).toHaveLength(2)
  })

  it('a bad message gets an error and the connection stays usable; a cursor resumes a subscription', async () => {
    const {bus: b, url} = await setup()
    const c = await ws(`${url}/v1/ws`)
    c.socket.send('not json')
    c.socket.send(JSON.stringify({op: 'subscribe', id: 'x', patterns: ['NOT A PATTERN']}))
    c.socket.send(JSON.stringify({op: 'dance', id: 'y'}))
    c.socket.send(JSON.stringify({op: 'unsubscribe', id: 'nope'}))
    await waitFor(() => c.messages.filter((m) => m.op === 'error').length === 4, 5000, 'four errors')
    expect(c.messages.map((m) => m.error?.message)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^not JSON/),
        expect.stringMatching(/invalid channel pattern/),
        expect.stringMatching(/unknown op "dance"/),
        expect.stringMatching(/no subscription "nope"/),
      ]),
    )
    c.socket.send(JSON.stringify({op: 'subscribe', id: 'a', patterns: ['sys.alert.*']}))
    await waitFor(() => c.messages.some((m) => m.op === 'subscribed'), 5000, 'subscribed')
    await publish(b, 'sys.alert.warning', 'one')
    await waitFor(() => c.messages.some((m) => m.op === 'event'), 5000, 'one event')
    const cursor = c.messages.find((m) => m.op === 'event')!.cursor as string
    c.socket.send(JSON.stringify({op: 'unsubscribe', id: 'a'}))
    await waitFor(() => c.messages.some((m) => m.op === 'unsubscribed'), 5000, 'unsubscribed')
    await publish(b, 'sys.alert.critical', 'two')
    await publish(b, 'sys.alert.warning', 'three')
    c.socket.send(JSON.stringify({op: 'subscribe', id: 'b', patterns: ['sys.alert.*'], cursor}))
    await waitFor(
      () => c.messages.filter((m) => m.op === 'event' && m.id === 'b').length === 2,
      5000,
      'resumed',
    )
    expect(c.messages.filter((m) => m.id === 'b' && m.op === 'event').map((m) => m.event.type)).toEqual([
      'two',
      'three',
    ])
  })

  it('a client that stops reading is closed with 1008 and the reason', async () => {
    const limit = 64 * 1024
    const {bus: b, gateway, url} = await setup({clientBufferBytes: limit, dropGraceMs: 60_000})
    const c = await ws(`${url}/v1/ws?pattern=sys.state.update`)
    await waitFor(() => c.messages.some((m) => m.op === 'subscribed'), 5000, 'subscribed')
    const closed = new Promise<[number, string]>((resolve) =>
      c.socket.on('close', (code, reason) => resolve([code, String(reason)])),
    )
    c.socket.pause()
    const blob = 'x'.repeat(32 * 1024)
    const dropped = () => gateway.log.lines.find((l) => l.includes('dropped WebSocket client'))
    for (let i = 0; i < 2000 && !dropped(); i++) await publish(b, 'sys.state.update', 'big', {i, blob})
    await waitFor(dropped, 10_000, 'the drop')
    c.socket.resume()
    const [code, reason] = await closed
    expect(code).toBe(1008)
    expect(reason).toMatch(/^slow consumer: \d+ bytes unread \(limit 65536\)$/)
  })
})
