import {request as httpRequest, type IncomingMessage} from 'node:http'

import type {AgentLog} from '../../src/agent/log.js'
import type {RaptorBus} from '../../src/bus/index.js'
import {startGateway, type Gateway, type GatewayOptions} from '../../src/gateway/server.js'

/** Log lines the gateway wrote during a test. */
export interface CapturedLog {
  lines: string[]
}

/** A gateway on a free loopback port over the bus, closed by the caller. */
export async function startTestGateway(
  bus: RaptorBus,
  options: Partial<Omit<GatewayOptions, 'bus' | 'log'>> = {},
): Promise<Gateway & {log: CapturedLog}> {
  const captured: CapturedLog = {lines: []}
  const log: AgentLog = {
    write: (level, message, fields) =>
      void captured.lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`),
    forHandler: () => ({info() {}, warn() {}, error() {}}),
  }
  const gateway = await startGateway({bus, port: 0, ...options, log})
  return Object.assign(gateway, {log: captured})
}

/** One Server-Sent Event as received. */
export interface SseMessage {
  event: string
  id?: string
  data: string
}

/** A Server-Sent Events client over a plain HTTP request: every message it has received so far. */
export interface SseClient {
  response: IncomingMessage
  messages: SseMessage[]
  /** Only the `message` events, parsed. */
  events(): Record<string, unknown>[]
  /** The last `id:` received (what EventSource would send back as Last-Event-ID). */
  lastEventId?: string
  /** The server said `: live` (history sent, the stream is live). */
  live: boolean
  ended: Promise<void>
  close(): void
}

/** Opens `GET url` and parses the event stream as it arrives. Rejects on a non-200 answer. */
export function sse(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {headers: {accept: 'text/event-stream', ...headers}}, (response) => {
      if (response.statusCode !== 200) {
        let body = ''
        response.on('data', (d) => (body += d))
        response.on('end', () => reject(new Error(`${response.statusCode}: ${body}`)))
        return
      }
      response.setEncoding('utf8')
      let buffer = ''
      const client: SseClient = {
        response,
        messages: [],
        events: () => client.messages.filter((m) => m.event === 'message').map((m) => JSON.parse(m.data)),
        ended: new Promise((done) => {
          response.on('end', done)
          response.on('close', done)
        }),
        close: () => req.destroy(),
        live: false,
      }
      response.on('data', (chunk: string) => {
        buffer += chunk
        let at: number
        while ((at = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, at)
          buffer = buffer.slice(at + 2)
          const message: SseMessage = {event: 'message', data: ''}
          const data: string[] = []
          let hasId = false
          for (const line of block.split('\n')) {
            if (line === ': live') client.live = true
            if (line.startsWith(':')) continue
            const colon = line.indexOf(':')
            const field = colon < 0 ? line : line.slice(0, colon)
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
            if (field === 'event') message.event = value
            else if (field === 'data') data.push(value)
            else if (field === 'id') {
              message.id = value
              hasId = true
            }
          }
          if (hasId) client.lastEventId = message.id
          if (data.length === 0) continue
          message.data = data.join('\n')
          client.messages.push(message)
        }
      })
      resolve(client)
    })
    req.on('error', reject)
    req.end()
  })
}

/** JSON over real HTTP: status, headers and parsed body (text when not JSON). */
export async function call(
  url: string,
  init: RequestInit & {json?: unknown} = {},
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON under test, checked by expect
): Promise<{status: number; headers: Headers; body: any; text: string}> {
  const {json, ...rest} = init
  const response = await fetch(url, {
    ...rest,
    ...(json === undefined
      ? {}
      : {
          method: rest.method ?? 'POST',
          body: JSON.stringify(json),
          headers: {'content-type': 'application/json', ...(rest.headers as Record<string, string>)},
        }),
  })
  const text = await response.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {
    // not JSON
  }
  return {status: response.status, headers: response.headers, body, text}
}
