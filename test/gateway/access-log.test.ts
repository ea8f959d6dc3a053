import {afterEach, describe, expect, it} from 'vitest'
import {WebSocket} from 'ws'

import {sse, startTestGateway} from '../helpers/gateway.js'
import {testBuses, waitFor} from '../helpers/index.js'

const bus = testBuses()
const open: {close(): unknown}[] = []
afterEach(async () => {
  while (open.length > 0) await open.pop()!.close()
})

const TOKEN = 'an-access-log-token-of-32-chars-x'

describe('access log', () => {
  it('one info line per request (method, path, status, ms), live streams when they end; never a token', async () => {
    const g = await startTestGateway(await bus(), {accessLog: true, token: TOKEN})
    open.push(g)
    const auth = {authorization: `Bearer ${TOKEN}`}
    expect((await fetch(`${g.url}/v1/channels?access_token=${TOKEN}`)).status).toBe(200)
    expect((await fetch(`${g.url}/v1/nothing-here`, {headers: auth})).status).toBe(404)
    expect((await fetch(`${g.url}/v1/channels`)).status).toBe(401)
    const stream = await sse(`${g.url}/v1/stream?pattern=sys.**&access_token=${TOKEN}`)
    await waitFor(() => stream.live, 10_000, 'the stream')
    stream.close()
    const socket = new WebSocket(`${g.url.replace(/^http/, 'ws')}/v1/ws`, {headers: auth})
    await new Promise((resolve, reject) => {
      socket.once('open', resolve)
      socket.once('error', reject)
    })
    socket.close()
    const access = () => g.log.lines.filter((l) => /^info (GET|POST) /.test(l))
    await waitFor(() => access().length === 5, 10_000, 'five access lines')
    const lines = access().map((l) => l.slice(0, l.indexOf(' {')))
    expect(lines.map((l) => l.replace(/ [\d.]+ms$/, ''))).toEqual(
      expect.arrayContaining([
        'info GET /v1/channels 200',
        'info GET /v1/nothing-here 404',
        'info GET /v1/channels 401',
        'info GET /v1/stream 200',
        'info GET /v1/ws 101',
      ]),
    )
    for (const line of lines) expect(line).toMatch(/ \d+(\.\d)?ms$/)
    expect(g.log.lines.join('\n')).not.toContain(TOKEN)
  })

  it('is off by default', async () => {
    const g = await startTestGateway(await bus())
    open.push(g)
    expect((await fetch(`${g.url}/v1/channels`)).status).toBe(200)
    expect(g.log.lines.filter((l) => l.includes('/v1/channels'))).toEqual([])
  })
})
