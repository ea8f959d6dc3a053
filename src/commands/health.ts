import {Flags} from '@oclif/core'

import type {HealthOptions, HealthReport} from '../bus/health.js'
import {BaseCommand} from '../cli/base-command.js'
import {ExitCode} from '../cli/exit-codes.js'
import {durationFlag} from '../cli/flags.js'
import {palette, plural, table} from '../cli/output.js'

export default class Health extends BaseCommand<typeof Health> {
  static override summary = 'Check Redis and the live agents.'
  static override description = `Measures Redis (reachability, version, latency, clients, memory) and reads the agents' heartbeats. The report's status is healthy when every check passes, degraded when one warns, unhealthy when one fails.

Checked by default: latency, stale agents, and stalled handlers — a consumer group with a backlog whose oldest undelivered event has waited longer than --max-wait (60s) while no live agent runs that handler. --max-dlq and --max-lag add thresholds.

Exit codes: 0 healthy, 1 degraded or unhealthy, 69 Redis unreachable.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --json',
    '<%= config.bin %> <%= command.id %> --max-latency 20 || page-oncall',
    '<%= config.bin %> <%= command.id %> --max-dlq 0 --max-lag 1000 --json   # a CI smoke check',
  ]

  static override flags = {
    // Thresholds: each becomes a check that warns when crossed (see thresholds()).
    'max-latency': Flags.integer({
      summary: 'Latency in ms above which Redis counts as slow (degraded).',
      default: 100,
      min: 1,
    }),
    'max-dlq': Flags.integer({
      summary: 'Dead letters (all reasons) above which the bus is degraded.',
      min: 0,
    }),
    'max-wait': durationFlag({
      summary:
        'How long the oldest undelivered event of a handler no live agent serves may wait (stalled → degraded).',
      default: 60_000,
    }),
    'max-lag': Flags.integer({
      summary: 'Consumer-group lag (events not yet read by a handler) above which the bus is degraded.',
      min: 0,
    }),
  }

  async run(): Promise<HealthReport> {
    const bus = await this.bus()
    const report = await bus.health(this.thresholds())
    if (this.jsonEnabled()) {
      if (report.status !== 'healthy') {
        // The report is the --json document even when the exit code says unhealthy.
        this.logJson(report)
        this.exit(ExitCode.FAILED)
      }
      return report
    }
    this.render(report)
    if (report.status !== 'healthy') this.exit(ExitCode.FAILED)
    return report
  }

  /** The health thresholds from the flags. */
  private thresholds(): HealthOptions {
    return {
      maxLatencyMs: this.flags['max-latency'],
      maxDlq: this.flags['max-dlq'],
      maxLag: this.flags['max-lag'],
      maxWaitMs: this.flags['max-wait'],
    }
  }

  private render(report: HealthReport): void {
    const c = palette()
    const colour = {healthy: c.green, degraded: c.yellow, unhealthy: c.red}[report.status]
    const mark = {pass: c.green('pass'), warn: c.yellow('warn'), fail: c.red('fail')}
    this.log(`status: ${colour(report.status)}`)
    this.log(
      `redis ${report.redisVersion}${report.deployment === 'cluster' ? ` (cluster of ${report.masters} masters)` : ''}, latency ${report.latencyMs} ms, ${plural(report.connectedClients, 'client')}, ` +
        `memory ${report.usedMemoryHuman}${report.maxMemoryBytes > 0 ? ` of ${report.maxMemoryBytes} bytes` : ''}, ` +
        `up ${report.uptimeSeconds} s`,
    )
    this.log('')
    this.log(
      table(
        ['CHECK', 'STATUS', 'DETAIL'],
        report.checks.map((check) => [check.name, mark[check.status], check.detail]),
      ),
    )
    if (report.agents.length > 0) {
      this.log('')
      this.log(
        table(
          ['AGENT', 'HANDLERS', 'LAST SEEN', 'STATE'],
          report.agents.map((a) => [
            a.id,
            a.handlers.join(', '),
            `${Math.round(a.ageMs / 1000)} s ago`,
            a.stale ? c.yellow('stale') : c.green('live'),
          ]),
        ),
      )
    }
  }
}
