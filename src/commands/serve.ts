import {readFile} from 'node:fs/promises'

import {Flags} from '@oclif/core'

import type {ConnectionChange} from '../bus/connection.js'
import {InvalidInputError} from '../bus/errors.js'
import {BaseCommand} from '../cli/base-command.js'
import {ExitCode} from '../cli/exit-codes.js'
import {palette} from '../cli/output.js'
import type {Gateway} from '../gateway/server.js'

export default class Serve extends BaseCommand<typeof Serve> {
  static override summary = 'Serve the bus on HTTP: CloudEvents ingress, SSE/WebSocket streams, a dashboard.'
  static override description = `Starts the gateway: POST /v1/events (CloudEvents HTTP binding: structured, binary and batch), GET /v1/events/{id}, /v1/channels and their history, GET /v1/stream (Server-Sent Events, resumable with Last-Event-ID), GET /v1/ws (WebSocket with per-connection filters), /v1/dlq (list, requeue, purge), /metrics (Prometheus), /healthz, /readyz, /api/v1/bus/health, and a web dashboard at /.

Binds 127.0.0.1 by default. Bound to any other address it requires a bearer token for every request but /healthz (--token-file, or RAPTOR_TOKEN), and refuses to start without one (exit 2). A live client that leaves more than --client-buffer bytes unread is dropped with the reason.

Logs go to stderr (NDJSON on stdout with --json). SIGTERM/SIGINT end the live streams, stop listening and exit 0; a second signal exits at once (130).`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --port 8080 --cors-origin https://app.example.com',
    'RAPTOR_TOKEN=$(cat /run/secrets/raptor) <%= config.bin %> <%= command.id %> --host 0.0.0.0',
    '<%= config.bin %> <%= command.id %> --host 0.0.0.0 --token-file /run/secrets/raptor-token',
  ]

  static override flags = {
    host: Flags.string({
      summary: 'Address to bind (anything but loopback requires a token).',
      default: '127.0.0.1',
    }),
    port: Flags.integer({
      summary: 'Port to listen on (0: any free port).',
      default: 7700,
      min: 0,
      max: 65535,
    }),
    'token-file': Flags.string({
      summary: 'File holding the bearer token (or set RAPTOR_TOKEN).',
      description: 'Every request but /healthz must then send Authorization: Bearer <token>.',
    }),
    'cors-origin': Flags.string({
      summary: 'Allow browser pages of this origin (CORS); repeatable. Default: CORS off.',
      multiple: true,
    }),
    'client-buffer': Flags.integer({
      summary: 'Bytes a live (SSE/WebSocket) client may leave unread before it is dropped.',
      default: 1024 * 1024,
      min: 64 * 1024,
      helpGroup: 'TUNING',
    }),
    'access-log': Flags.boolean({
      summary: 'Log one line per request: method, path, status, ms (live streams when they end).',
      description: 'Never the query string (it may hold access_token), headers or cookies. Off by default.',
      default: false,
    }),
    'max-streams': Flags.integer({
      summary: 'Live connections (SSE + WebSocket) at once; more get 503.',
      default: 10_000,
      min: 1,
      helpGroup: 'TUNING',
    }),
  }

  async run(): Promise<void> {
    const {flags} = this
    const token = await this.token()
    const [{checkExposure, startGateway}, {createLog}] = await Promise.all([
      import('../gateway/server.js'),
      import('../agent/log.js'),
    ])
    // Before connecting to Redis: an exposed bind without a token is a usage error, whatever Redis says.
    checkExposure(flags.host, token)
    const log = createLog(this.jsonEnabled(), palette(process.stderr))
    // Connection changes reach the gateway once it runs (live streams resume from history).
    const started: {gateway?: Gateway} = {}
    const bus = await this.bus({
      reconnect: true,
      onConnectionChange: (change: ConnectionChange) => {
        if (change.state === 'lost')
          log.write('warn', `redis: connection lost (${change.reason})`, {connection: change.connection})
        else log.write('info', 'redis: reconnected')
        started.gateway?.connectionChanged(change)
      },
    })
    const gateway = await startGateway({
      bus,
      host: flags.host,
      port: flags.port,
      token,
      corsOrigins: flags['cors-origin'],
      limits: {clientBufferBytes: flags['client-buffer'], maxStreams: flags['max-streams']},
      accessLog: flags['access-log'],
      log,
    })
    started.gateway = gateway
    log.write('info', `serve: listening on ${gateway.url} (dashboard ${gateway.url}/)`, {
      url: gateway.url,
      auth: token === undefined ? 'none (loopback)' : 'bearer token',
    })
    await new Promise<void>((resolve) => {
      let signals = 0
      const onSignal = (signal: NodeJS.Signals) => {
        if (++signals > 1) process.exit(ExitCode.INTERRUPTED)
        log.write('info', `${signal}: closing live streams and stopping (send again to exit at once)`)
        gateway.close().then(resolve, (error: Error) => {
          log.write('error', `shutdown failed: ${error.message}`)
          resolve()
        })
      }
      process.on('SIGINT', onSignal)
      process.on('SIGTERM', onSignal)
    })
  }

  /** The token from --token-file or RAPTOR_TOKEN (trailing newline trimmed). */
  private async token(): Promise<string | undefined> {
    const file = this.flags['token-file']
    if (file !== undefined) {
      let text: string
      try {
        text = await readFile(file, 'utf8')
      } catch (error) {
        throw new InvalidInputError(
          `cannot read --token-file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
        )
      }
      const token = text.trim()
      if (token === '') throw new InvalidInputError(`--token-file ${file} is empty: put the token in it`)
      return token
    }
    const env = process.env.RAPTOR_TOKEN
    return env === undefined || env.trim() === '' ? undefined : env.trim()
  }
}
