import {afterEach, describe, expect, it} from 'vitest'

import type {RaptorBus} from '../../src/bus/index.js'
import {sse, startTestGateway, type SseClient} from '../helpers/gateway.js'
import {testBuses, waitFor} from '../helpers/index.js'

const bus = testBuses()
const open: {close(): unknown}[] = []
afterEach(async () => {
  while (open.length > 0) await open.pop()!.close()
})

async function client(url: string, headers?: Record<string, string>): Promise<SseClient> {
  const c = await sse(url, headers)
  open.push(c)
  await waitFor(() => c.live, 10_000, 'the stream to be live')
  return c
}

const seqs = (c: SseClient) => c.events().map((e) => (e.data as {seq: number}).seq)

/** True when `xs` is exactly `from`, `from + step`, … up to `to`. */
function contiguous(xs: number[], from: number, to: number, step = 1): boolean {
  if (xs.length !== Math.floor((to - from) / step) + 1) return false
  return xs.every((x, i) => x === from + i * step)
}

describe('live fan-out (clients of the same patterns share one group)', () => {
  it('clients joining while events flow, with and without filters or a Last-Event-ID, each get every event once and in order', async () => {
    const b: RaptorBus = await bus()
    const g = await startTestGateway(b)
    open.push(g)
    const url = `${g.url}/v1/stream?pattern=sys.state.update`
    let sent = 0
    let publishing = true
    const publisher = (async () => {
      while (publishing)
        await b.publish({
          channel: 'sys.state.update',
          type: 'seq',
          payload: {seq: sent, even: sent++ % 2 === 0},
        })
    })()
    const a = await client(url)
    await waitFor(() => a.events().length >= 50, 10_000, 'events for the first client')
    // Joins the group of `a` while it is busy; and one with a filter; and one resuming from `a`.
    const resumeFrom = a.lastEventId!
    const resumeAfter = seqs(a).at(-1)!
    const [late, evens, resumed] = await Promise.all([
      client(url),
      client(`${url}&where=${encodeURIComponent('data.even == true')}`),
      client(url, {'last-event-id': resumeFrom}),
    ])
    await waitFor(() => seqs(late).length >= 50 && seqs(evens).length >= 25, 10_000, 'events after joining')
    publishing = false
    await publisher
    const last = sent - 1
    await waitFor(
      () => [a, late, resumed].every((c) => seqs(c).at(-1) === last) && seqs(evens).at(-1)! >= last - 1,
      10_000,
      `every client up to ${last}`,
    )
    expect(contiguous(seqs(a), seqs(a)[0], last)).toBe(true)
    expect(contiguous(seqs(late), seqs(late)[0], last)).toBe(true)
    expect(contiguous(seqs(resumed), resumeAfter + 1, last)).toBe(true)
    const e = seqs(evens)
    expect(contiguous(e, e[0], e.at(-1)!, 2) && e[0] % 2 === 0).toBe(true)
    // The ids of the shared stream resume too: from the last id of the late joiner, nothing is left.
    const again = await client(url, {'last-event-id': late.lastEventId!})
    await b.publish({channel: 'sys.state.update', type: 'seq', payload: {seq: sent}})
    await waitFor(() => seqs(again).length >= 1, 5000, 'the next event')
    expect(seqs(again)).toEqual([sent])
  })
})
