import {Flags} from '@oclif/core'

import {findConfigFile, loadConfig} from '../bus/config.js'
import {DEFAULT_REDIS_URL, closeConnection, openConnection, redactUrl} from '../bus/connection.js'
import {parseRedisUrl} from '../bus/url.js'
import {BaseCommand} from '../cli/base-command.js'
import {contextsPath, readContexts} from '../cli/contexts.js'
import {aclCheck, redisChecks, redisServerCheck, type DoctorCheck, type Origin} from '../cli/doctor.js'
import {ExitCode} from '../cli/exit-codes.js'
import {palette} from '../cli/output.js'

export interface DoctorResult {
  ok: boolean
  redisUrl: string
  prefix: string
  origins: {redisUrl: Origin; prefix: Origin}
  checks: DoctorCheck[]
}

export default class Doctor extends BaseCommand<typeof Doctor> {
  static override summary = 'Check the setup: settings, config file, Redis, permissions, plugins.'
  static override description = `Prints a ✓/✗ list of what a newcomer trips on, with the fix for each ✗: which Redis URL and prefix are in force and where each came from (flag, env, context, config file, default), the contexts file, the config file, Redis reachable and its version, the database index, standalone/cluster/sentinel, whether this Redis user may run the commands raptor runs (ACL DRYRUN), that each --plugin loads, Node's version, and that redis-server is on the PATH (only raptor's own tests need it: a warning, !, not a failure). Exit 0 when nothing failed (✗), 1 otherwise.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --plugin handlers/greeter.js --context prod',
    '<%= config.bin %> <%= command.id %> --json',
  ]

  static override flags = {
    plugin: Flags.string({summary: 'Also check that this plugin loads (repeatable).', multiple: true}),
  }

  async run(): Promise<DoctorResult> {
    const checks: DoctorCheck[] = []
    const major = Number(process.versions.node.split('.')[0])
    checks.push(
      major >= 20
        ? {name: 'node', status: 'ok', detail: process.version}
        : {
            name: 'node',
            status: 'fail',
            detail: `${process.version}: raptor needs Node.js 20 or later`,
            fix: 'install Node.js 20+',
          },
    )
    checks.push(this.contextsCheck())
    const {check: configCheck, redisUrl: configUrl, prefix: configPrefix} = await this.configCheck()
    checks.push(configCheck)

    const given = (flag: string) => this.argv.some((a) => a === flag || a.startsWith(flag + '='))
    const origin = (flag: string, env: string, ctx: unknown, cfg: unknown): Origin =>
      given(flag)
        ? 'flag'
        : process.env[env]
          ? 'env'
          : ctx !== undefined
            ? 'context'
            : cfg !== undefined
              ? 'config file'
              : 'default'
    const ctx = this.context?.context
    const redisUrl = this.flags['redis-url'] ?? ctx?.redisUrl ?? configUrl ?? DEFAULT_REDIS_URL
    const prefix = this.flags.prefix ?? ctx?.prefix ?? configPrefix ?? 'raptor'
    const origins = {
      redisUrl: origin('--redis-url', 'REDIS_URL', ctx?.redisUrl, configUrl),
      prefix: origin('--prefix', 'RAPTOR_PREFIX', ctx?.prefix, configPrefix),
    }
    checks.push({
      name: 'settings',
      status: 'ok',
      detail: `${redactUrl(redisUrl)} (${origins.redisUrl}${origins.redisUrl === 'context' ? ` ${this.context!.name}` : ''}), prefix ${prefix} (${origins.prefix})`,
    })

    const options = this.busOptions()
    let db: number | undefined
    try {
      db = parseRedisUrl(redisUrl).db
    } catch (error) {
      checks.push({
        name: 'redis url',
        status: 'fail',
        detail: (error as Error).message,
        fix: 'write it as redis://[user:password@]host[:port][/db] (rediss:// for TLS)',
      })
    }
    if (db !== undefined) {
      try {
        // Database 0 first: a database the server lacks is then its own ✗, with the range it has.
        const redis = await openConnection(
          {...options, redisUrl: onDatabaseZero(redisUrl), reconnect: false},
          `${prefix}:doctor`,
        )
        try {
          checks.push({name: 'redis', status: 'ok', detail: `reachable at ${redactUrl(redisUrl)}`})
          checks.push(...(await redisChecks(redis, db)), await aclCheck(redis, prefix, db))
        } finally {
          await closeConnection(redis)
        }
      } catch (error) {
        checks.push({
          name: 'redis',
          status: 'fail',
          detail: (error as Error).message.replace(/: (start|check|assign) .*$/, ''),
          fix: /password|AUTH/i.test((error as Error).message)
            ? 'check the password: raptor context add NAME --redis-url … --password-stdin'
            : /cluster_state/.test((error as Error).message)
              ? 'assign every slot (redis-cli --cluster create …, or --cluster fix) and wait for cluster_state:ok'
              : 'start redis-server there, or point --redis-url / REDIS_URL / a context at a reachable Redis',
        })
      }
    }

    for (const plugin of this.flags.plugin ?? []) checks.push(await this.pluginCheck(plugin))
    checks.push(redisServerCheck())

    const ok = checks.every((c) => c.status !== 'fail')
    const result = {ok, redisUrl: redactUrl(redisUrl), prefix, origins, checks}
    if (this.jsonEnabled()) {
      if (!ok) {
        this.logJson(result)
        return this.exit(ExitCode.FAILED)
      }
      return result
    }
    const c = palette()
    const mark = {ok: c.green('✓'), fail: c.red('✗'), warn: c.yellow('!'), skip: c.yellow('–')}
    for (const check of checks) {
      this.log(`${mark[check.status]} ${check.name.padEnd(21)} ${check.detail}`)
      if (check.fix) this.log(`  ${' '.repeat(21)} ${c.bold('fix:')} ${check.fix}`)
    }
    if (!ok) this.exit(ExitCode.FAILED)
    return result
  }

  private contextsCheck(): DoctorCheck {
    const path = contextsPath()
    try {
      const file = readContexts(path)
      const n = Object.keys(file.contexts).length
      return {
        name: 'contexts',
        status: 'ok',
        detail:
          n === 0
            ? 'none saved (optional: raptor context add)'
            : `${n} in ${path}${file.current ? `, current ${file.current}` : ''}`,
      }
    } catch (error) {
      return {
        name: 'contexts',
        status: 'fail',
        detail: (error as Error).message.replace(/: run chmod.*$/, ''),
        fix: `chmod 600 ${path}`,
      }
    }
  }

  private async configCheck(): Promise<{check: DoctorCheck; redisUrl?: string; prefix?: string}> {
    try {
      const file = findConfigFile(this.flags.config)
      if (!file)
        return {
          check: {name: 'config file', status: 'ok', detail: 'none here (optional: raptor init writes one)'},
        }
      const config = await loadConfig(this.flags.config)
      const channels = config.channels?.length ?? 0
      const schemas = Object.keys(config.schemas ?? {}).length
      return {
        check: {
          name: 'config file',
          status: 'ok',
          detail: `${file}: ${channels} channels, ${schemas} payload schemas`,
        },
        redisUrl: config.redisUrl,
        prefix: config.prefix,
      }
    } catch (error) {
      return {
        check: {
          name: 'config file',
          status: 'fail',
          detail: (error as Error).message,
          fix: 'fix the file named above (raptor init writes a working one)',
        },
      }
    }
  }

  private async pluginCheck(plugin: string): Promise<DoctorCheck> {
    const {loadPlugin} = await import('../agent/plugins.js')
    try {
      const handlers = await loadPlugin(plugin)
      return {
        name: `plugin ${plugin}`,
        status: 'ok',
        detail: `handlers ${handlers.map((h) => `${h.name} (${h.channels.join(', ')})`).join(', ')}`,
      }
    } catch (error) {
      return {
        name: `plugin ${plugin}`,
        status: 'fail',
        detail: (error as Error).message,
        fix: 'raptor agent test --plugin FILE --event EVENT.json runs it without Redis',
      }
    }
  }
}

/** The URL on database 0 (its `/db` or `?db=` replaced; the user information, which may hold `/`, untouched). */
function onDatabaseZero(url: string): string {
  const start = Math.max(url.indexOf('//') + 2, url.lastIndexOf('@') + 1)
  return (
    url.slice(0, start) +
    url
      .slice(start)
      .replace(/\/\d+(?=$|\?)/, '/0')
      .replace(/([?&])db=\d+/, '$1db=0')
  )
}
