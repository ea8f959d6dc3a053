import {accessSync, constants} from 'node:fs'
import {resolve} from 'node:path'

import {Args, Flags} from '@oclif/core'

import {InvalidInputError} from '../../bus/errors.js'
import {hasPassword, parseRedisUrl} from '../../bus/url.js'
import {LocalCommand} from '../../cli/base-command.js'
import {
  assertContextName,
  readContexts,
  redactContext,
  writeContexts,
  type Context,
} from '../../cli/contexts.js'
import {readStdin} from '../../cli/input.js'

export default class ContextAdd extends LocalCommand<typeof ContextAdd> {
  static override summary = 'Save named connection settings (a context).'
  static override description = `Saves the Redis URL, prefix and TLS files under a name in the contexts file of your config directory ($XDG_CONFIG_HOME/raptor/contexts.json, mode 0600), so that the password never has to be on a command line again. Pick it with --context NAME or RAPTOR_CONTEXT, or make it the default with raptor context use NAME. Precedence: flag > env > context > config file > default.

--password-stdin reads the password from stdin (as docker login does), so that it is in neither the shell history nor ps.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> local --redis-url redis://127.0.0.1:6379/0 --use',
    'printf \'%s\' "$REDIS_PASSWORD" | <%= config.bin %> <%= command.id %> prod --redis-url rediss://app@redis.internal:6380/0 --prefix orders --password-stdin',
    '<%= config.bin %> <%= command.id %> prod --force --redis-url rediss://redis.internal:6380/0 --tls-ca ./ca.pem',
  ]

  static override args = {
    name: Args.string({description: 'Context name (letters, digits, _ . -).', required: true}),
  }

  static override flags = {
    'redis-url': Flags.string({summary: 'Redis URL of this context.', required: true}),
    prefix: Flags.string({summary: 'Key prefix of this context.'}),
    'password-stdin': Flags.boolean({summary: 'Read the Redis password from stdin.'}),
    'tls-ca': Flags.string({summary: 'CA certificate file (PEM) to trust.'}),
    'tls-cert': Flags.string({summary: 'Client certificate file (PEM).'}),
    'tls-key': Flags.string({summary: 'Client key file (PEM).'}),
    'tls-servername': Flags.string({summary: 'Server name to check the certificate against (SNI).'}),
    cluster: Flags.boolean({
      summary: 'Redis Cluster: always use a cluster client (--no-cluster: never); detected when left out.',
      allowNo: true,
    }),
    description: Flags.string({summary: 'A note shown by context list.'}),
    use: Flags.boolean({summary: 'Also make it the current context.'}),
    force: Flags.boolean({char: 'f', summary: 'Replace a context of the same name.'}),
  }

  async run(): Promise<{name: string; context: Context; current: boolean}> {
    const {flags} = this
    const {name} = this.args
    assertContextName(name)
    let raw = flags['redis-url']
    if (flags['password-stdin']) {
      if (/^[^/]*\/\/[^@/]*:[^@]+@/.test(raw) || /[?&]password=./.test(raw))
        throw new InvalidInputError(
          '--password-stdin: the URL has a password already; leave it out of --redis-url',
        )
      const password = (await readStdin()).replace(/\r?\n$/, '')
      if (password === '') throw new InvalidInputError('--password-stdin: nothing on stdin')
      raw = withPassword(raw, password)
    } else if (hasPassword(raw)) {
      // As docker login does: the context keeps it safe from now on, but this command line did not.
      this.note(
        'warning: the password on this command line is visible in ps and your shell history; --password-stdin keeps it off',
      )
    }
    // The one URL parser of every door: what it refuses here would be refused at the first use.
    const url = parseRedisUrl(raw, '--redis-url')
    const tls = (['tls-ca', 'tls-cert', 'tls-key', 'tls-servername'] as const).filter(
      (f) => flags[f] !== undefined,
    )
    if (tls.length > 0 && !url.tls)
      throw new InvalidInputError(`--${tls[0]} is for TLS: use a rediss:// URL (or leave the TLS flags out)`)
    const file = readContexts()
    if (file.contexts[name] && !flags.force)
      throw new InvalidInputError(`context '${name}' exists: pass --force to replace it`, {context: name})
    const context: Context = {
      redisUrl: raw,
      ...(flags.prefix === undefined ? {} : {prefix: flags.prefix}),
      ...(flags['tls-ca'] === undefined ? {} : {tlsCa: tlsFile(flags['tls-ca'], '--tls-ca')}),
      ...(flags['tls-cert'] === undefined ? {} : {tlsCert: tlsFile(flags['tls-cert'], '--tls-cert')}),
      ...(flags['tls-key'] === undefined ? {} : {tlsKey: tlsFile(flags['tls-key'], '--tls-key')}),
      ...(flags['tls-servername'] === undefined ? {} : {tlsServername: flags['tls-servername']}),
      ...(flags.cluster === undefined ? {} : {cluster: flags.cluster}),
      ...(flags.description === undefined ? {} : {description: flags.description}),
    }
    file.contexts[name] = context
    if (flags.use || file.current === undefined) file.current = name
    writeContexts(file)
    const current = file.current === name
    this.log(`saved context '${name}'${current ? ' (current)' : ''}: ${redactContext(context).redisUrl}`)
    return {name, context: redactContext(context), current}
  }
}

/**
 * A TLS file as the context keeps it: an absolute path (the context is used from any directory),
 * checked readable now rather than at the first command that needs it.
 * @throws InvalidInputError when it cannot be read
 */
function tlsFile(file: string, flag: string): string {
  const path = resolve(file)
  try {
    accessSync(path, constants.R_OK)
  } catch (error) {
    throw new InvalidInputError(
      `${flag}: cannot read ${path} (${(error as NodeJS.ErrnoException).code}): give the path of a PEM file`,
    )
  }
  return path
}

/** The URL with a password put in after its user name (`rediss://app@h` → `rediss://app:PW@h`), %-encoded. */
function withPassword(url: string, password: string): string {
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(url)?.[0] ?? ''
  const rest = url.slice(scheme.length)
  const at = rest.lastIndexOf('@')
  const user = at < 0 ? '' : rest.slice(0, at)
  return `${scheme}${user}:${encodeURIComponent(password)}@${rest.slice(at + 1)}`
}
