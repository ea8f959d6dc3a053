import {Flags} from '@oclif/core'

import type {ConnectionChange} from '../../bus/connection.js'
import {parseDuration} from '../../bus/durations.js'
import {MAX_TIMER_MS} from '../../bus/timers.js'
import {BaseCommand} from '../../cli/base-command.js'
import {ExitCode} from '../../cli/exit-codes.js'
import {palette} from '../../cli/output.js'

export default class AgentCommand extends BaseCommand<typeof AgentCommand> {
  static override summary = 'Host handler plugins: consume their channels durably until stopped.'
  static override description = `Loads each plugin (an ES module whose default export is a handler definition or an array of them) and runs one durable consumer per handler: at-least-once, retries with backoff, timeouts, dead-lettering, and reclaim of events held by crashed agents. Publishes a heartbeat on sys.global.heartbeat. On SIGTERM/SIGINT it stops taking work, lets in-flight handlers finish within --grace and acks them, then exits 0; a second signal exits at once (130) and un-acked events are reclaimed by another agent.

Logs are readable lines on stderr (fields in logfmt: key=value, quoted when needed), or NDJSON on stdout with --json; --log-level warn keeps only retries, failures and problems (no line per handled event). A log reader that goes away (EPIPE) drains the agent as SIGTERM does. When Redis goes away the agent reconnects by itself and logs "redis: connection lost" and "redis: reconnected".

--metrics-host defaults to 0.0.0.0 (every IPv4 interface), as Prometheus exporters do, since the scraper usually runs elsewhere; use 127.0.0.1 to keep /metrics local.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> --plugin examples/plugins/research-monitor.js',
    '<%= config.bin %> <%= command.id %> --plugin a.js --plugin b.js --id worker-1 --concurrency 8 --metrics-port 9464',
  ]

  static override flags = {
    plugin: Flags.string({
      summary: 'Handler plugin file (ES module); repeatable.',
      multiple: true,
      required: true,
    }),
    id: Flags.string({summary: 'Agent id (heartbeats, consumer names). Default: <hostname>-<pid>.'}),
    concurrency: Flags.integer({
      summary: "Events handled at once per handler (overrides each handler's own).",
      min: 1,
    }),
    'heartbeat-interval': Flags.string({
      summary: 'Heartbeat interval on sys.global.heartbeat.',
      default: '30s',
    }),
    'metrics-port': Flags.integer({
      summary: 'Serve /metrics (Prometheus) and /healthz on this port.',
      min: 0,
      max: 65535,
    }),
    'metrics-host': Flags.string({
      summary: 'Address the metrics server binds (default 0.0.0.0: every interface; 127.0.0.1: local only).',
      env: 'RAPTOR_METRICS_HOST',
      dependsOn: ['metrics-port'],
    }),
    grace: Flags.string({
      summary: 'How long in-flight handlers may finish after SIGTERM/SIGINT.',
      default: '30s',
    }),
    'log-level': Flags.option({
      options: ['debug', 'info', 'warn', 'error'] as const,
      summary: 'Write log lines of this level and above (warn: only retries, failures and problems).',
      default: 'info' as const,
      env: 'RAPTOR_LOG_LEVEL',
    })(),
    'reclaim-after': Flags.string({
      summary: 'Events held this long by a silent (dead) consumer are reclaimed.',
      default: '20s',
    }),
  }

  async run(): Promise<void> {
    const {flags} = this
    const [{loadPlugins}, {Agent, checkAgentId}, {createLog}] = await Promise.all([
      import('../../agent/plugins.js'),
      import('../../agent/agent.js'),
      import('../../agent/log.js'),
    ])
    // Everything a user can get wrong is checked before anything touches Redis.
    if (flags.id !== undefined) checkAgentId(flags.id)
    // 0 would spin; below 100 ms heartbeats would flood sys.global.heartbeat.
    const heartbeatIntervalMs = parseDuration(flags['heartbeat-interval'], '--heartbeat-interval', {
      min: 100,
    })
    const graceMs = parseDuration(flags.grace, '--grace')
    // The consumer's lease timers run at a quarter of it; past what a Node timer holds, refuse it.
    const reclaimAfterMs = parseDuration(flags['reclaim-after'], '--reclaim-after', {
      min: 1,
      max: {ms: MAX_TIMER_MS, why: 'the longest a timer can wait'},
    })
    const handlers = await loadPlugins(flags.plugin)
    const log = createLog(this.jsonEnabled(), palette(process.stderr), flags['log-level'])
    const bus = await this.bus({
      reconnect: true,
      onConnectionChange: (change: ConnectionChange) =>
        change.state === 'lost'
          ? log.write('warn', `redis: connection lost (${change.reason})`, {connection: change.connection})
          : log.write('info', 'redis: reconnected'),
    })
    const agent = new Agent(bus, handlers, {
      id: flags.id,
      concurrency: flags.concurrency,
      heartbeatIntervalMs,
      metricsPort: flags['metrics-port'],
      metricsHost: flags['metrics-host'],
      reclaimAfterMs,
      log,
      onFatal: () => {
        process.exitCode = ExitCode.FAILED
        process.kill(process.pid, 'SIGTERM')
      },
    })
    const stopped = new Promise<void>((resolve) => {
      let signals = 0
      const onSignal = (signal: NodeJS.Signals) => {
        signals++
        if (signals === 1) {
          log.write('info', `${signal}: draining (send again to exit at once)`)
          agent.stop(graceMs).then(resolve, (error: Error) => {
            log.write('error', `drain failed: ${error.message}`)
            resolve()
          })
        } else {
          log.write('warn', `${signal} again: exiting now; un-acked events will be reclaimed`)
          process.exit(ExitCode.INTERRUPTED)
        }
      }
      process.on('SIGINT', onSignal)
      process.on('SIGTERM', onSignal)
      // The reader of the NDJSON log went away (`raptor agent --json | head`): drain as on SIGTERM.
      if (this.jsonEnabled()) this.out.onClose(() => onSignal('SIGPIPE' as NodeJS.Signals))
    })
    await agent.start()
    await stopped
  }
}
