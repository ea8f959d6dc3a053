/**
 * A publisher process of the cluster row (bench/cluster.ts), forked so that two publishers never
 * share an event loop. Messages (IPC): in `{url, prefix, channels, events, window, payloadBytes}`,
 * out `{ready}`; in `{go}`, out `{done, cpuUs}` once every event is published.
 */
import {RaptorBus} from '../src/bus/index.js'
import {payloadMaker, windowed} from './lib.js'

export interface PubStart {
  url: string
  prefix: string
  channels: string[]
  events: number
  window: number
  payloadBytes: number
}

let bus: RaptorBus | undefined
let start: PubStart | undefined

process.on('message', async (message: PubStart | {go: true}) => {
  if ('url' in message) {
    start = message
    bus = await RaptorBus.connect({
      redisUrl: message.url,
      prefix: message.prefix,
      channels: [{name: 'bench.**', retention: '1h'}],
    })
    // Registry entries and scripts loaded before the clock starts.
    for (const channel of message.channels) await bus.publish({channel, type: 'warm', payload: {}})
    process.send!({ready: true})
    return
  }
  const {channels, events, window, payloadBytes} = start!
  const payload = payloadMaker(payloadBytes, () => Date.now())
  const cpu = process.cpuUsage()
  await windowed(events, window, (i) =>
    bus!.publish({channel: channels[i % channels.length], type: 'bench', payload: payload()}),
  )
  const used = process.cpuUsage(cpu)
  process.send!({done: true, cpuUs: used.user + used.system})
  await bus!.close()
  process.exit(0)
})
