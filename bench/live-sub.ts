/**
 * The live subscriber of the latency rows, run as its own process (fork) so that it does not share an
 * event loop with the publisher. Messages (IPC): in `{mode, url, prefix, channel}`, out `{ready}`;
 * in `{stop: expected}`, out `{received, latency}` once every event has arrived or none for 2 s.
 */
import {Redis} from 'ioredis'

import {RaptorBus} from '../src/bus/index.js'
import {Histogram, nowMicros, type LatencySummary} from '../src/cli/histogram.js'

export interface SubStart {
  mode: 'raptor' | 'raw'
  url: string
  prefix: string
  channel: string
}

export interface SubReport {
  received: number
  latency: LatencySummary
}

const histogram = new Histogram()
let received = 0
const onTs = (ts: unknown) => {
  if (typeof ts === 'number') histogram.record(nowMicros() - ts)
  received++
}

let close: () => Promise<unknown> = async () => {}

process.on('message', async (message: SubStart | {stop: number}) => {
  if ('mode' in message) {
    if (message.mode === 'raptor') {
      const bus = await RaptorBus.connect({
        redisUrl: message.url,
        prefix: message.prefix,
        channels: [{name: message.channel, retention: '1h'}],
      })
      await bus.subscribe(message.channel, (event) => onTs(event.data.ts))
      close = () => bus.close()
    } else {
      const redis = new Redis(message.url)
      redis.on('message', (_channel: string, text: string) => onTs((JSON.parse(text) as {ts: number}).ts))
      await redis.subscribe(message.channel)
      close = () => redis.quit()
    }
    process.send!({ready: true})
    return
  }
  let last = received
  let idleSince = Date.now()
  while (received < message.stop && Date.now() - idleSince < 2000) {
    await new Promise((r) => setTimeout(r, 5))
    if (received !== last) {
      last = received
      idleSince = Date.now()
    }
  }
  await close()
  const report: SubReport = {received, latency: histogram.summary()}
  process.send!(report, () => process.exit(0))
})
