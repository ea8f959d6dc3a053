import {existsSync} from 'node:fs'
import {format} from 'node:util'

import {Command, Flags, type Interfaces} from '@oclif/core'

import type {BusOptions, RaptorBus} from '../bus/bus.js'
import {CONFIG_FILE_NAMES} from '../bus/config.js'
import {readTlsFiles, type TlsFiles, type TlsNames, type TlsOptions} from '../bus/tls.js'
import {hasPassword, redactText, secretsOf} from '../bus/url.js'
import {selectContext, type Context} from './contexts.js'
import {ExitCode, exitCodeFor} from './exit-codes.js'
import {tlsFlags} from './flags.js'
import {shareModules} from './share-modules.js'
import {stdoutWriter, type OutputWriter} from './writer.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<
  (typeof BaseCommand)['baseFlags'] & T['flags']
>
export type LocalFlags<T extends typeof Command> = Interfaces.InferredFlags<T['flags']>
export type BaseArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

/**
 * The base of commands that never talk to Redis (`context …`, `init`): `--json`, `note()` for stderr
 * and one `catch()` mapping errors to the exit-code table.
 */
export abstract class LocalCommand<T extends typeof Command> extends Command {
  static override enableJsonFlag = true

  protected flags!: LocalFlags<T>
  protected args!: BaseArgs<T>
  /** Every positional argument, for commands with `strict = false` (any number of them). */
  protected argList: string[] = []

  public override async init(): Promise<void> {
    await super.init()
    const {args, flags, argv} = await this.parse({
      flags: this.ctor.flags,
      baseFlags: this.ctor.baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      args: this.ctor.args,
      strict: this.ctor.strict,
    })
    this.flags = flags as LocalFlags<T>
    this.args = args as BaseArgs<T>
    this.argList = argv as string[]
    // From the start: a closed pipe (EPIPE) is then handled, whatever writes first.
    stdoutWriter()
  }

  /** stdout, with back-pressure; closed (and the command ending with 0) when the reader goes away. */
  protected get out(): OutputWriter {
    return stdoutWriter()
  }

  /** Prints a line on stdout through the shared writer (a closed pipe never throws); silent under --json. */
  override log(message = '', ...args: unknown[]): void {
    if (!this.jsonEnabled()) void this.out.write(format(message, ...args) + '\n')
  }

  /** The --json document, after whatever the writer still holds. */
  override logJson(json: unknown): void {
    this.out.flush()
    if (!this.out.closed) super.logJson(json)
  }

  /** Writes one line to stderr, even under --json (logs and progress never go to stdout). */
  protected note(message: string): void {
    process.stderr.write(message + '\n')
  }

  /**
   * Passwords the command was given (a --redis-url flag, the environment): scrubbed from every error
   * it prints, wherever they appear.
   */
  protected secrets(): string[] {
    const flag = (this.flags as Record<string, unknown> | undefined)?.['redis-url']
    return [...secretsOf(typeof flag === 'string' ? flag : undefined), ...secretsOf(process.env.REDIS_URL)]
  }

  protected override async catch(error: Error & {exitCode?: number}): Promise<never> {
    const code = exitCodeFor(error)
    if (code === ExitCode.OK || error?.name === 'ExitError' || (error as {code?: string}).code === 'EEXIT')
      throw error
    // One line: oclif spreads its parse errors over several ("Parsing --count \n\t<why>\nSee more help").
    const message = (error?.message ?? String(error))
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !/^See more help/i.test(line))
      .join(' ')
      .replace(/^Parsing (--[\w-]+) (.*)$/, (_all, flag: string, why: string) =>
        why.includes(flag) ? why : `${flag}: ${why}`,
      )
    const secrets = this.secrets()
    const safe = redactText(
      // ioredis's commandTimeout (one-shot commands): say what it means.
      message.replace(
        /\bCommand timed out\b/,
        'Redis stopped answering (no reply within 5 s): check that it is running and not overloaded',
      ),
      secrets,
    )
    if (this.jsonEnabled()) {
      this.logJson({error: {code: (error as {code?: string}).code ?? 'ERROR', message: safe, exitCode: code}})
    }
    this.note(`Error: ${safe}`)
    if (process.env.DEBUG && error?.stack) this.note(redactText(error.stack, secrets))
    return this.exit(code) as never
  }

  protected override async finally(error: Error | undefined): Promise<void> {
    await this.out.end()
    return super.finally(error)
  }
}

/**
 * The base of every raptor command that talks to Redis: the global flags (with environment fallbacks
 * and contexts), a lazily opened bus closed in `finally()`.
 */
export abstract class BaseCommand<T extends typeof Command> extends LocalCommand<T> {
  static override baseFlags = {
    'redis-url': Flags.string({
      summary: 'Redis URL (rediss:// for TLS).',
      description: 'Precedence: flag > REDIS_URL > context > config file > redis://127.0.0.1:6379/0.',
      env: 'REDIS_URL',
      helpGroup: 'GLOBAL',
    }),
    prefix: Flags.string({
      summary: 'Key prefix; two prefixes never see each other.',
      description: 'Precedence: flag > RAPTOR_PREFIX > context > config file > raptor.',
      env: 'RAPTOR_PREFIX',
      helpGroup: 'GLOBAL',
    }),
    config: Flags.string({
      summary: 'Config file (raptor.config.json|js|mjs).',
      description: 'Defaults to ./raptor.config.js, .mjs or .json when present.',
      env: 'RAPTOR_CONFIG',
      helpGroup: 'GLOBAL',
    }),
    context: Flags.string({
      summary: 'Named connection settings to use (see raptor context).',
      description:
        'Precedence: flag > env > context > config file > default. Without it, the context chosen by raptor context use.',
      env: 'RAPTOR_CONTEXT',
      helpGroup: 'GLOBAL',
    }),
    cluster: Flags.boolean({
      summary: 'Redis Cluster: use a cluster client (--no-cluster: a single-server one).',
      description:
        'Without it, detected: a URL with several hosts is a cluster, and one host is asked INFO cluster.',
      env: 'RAPTOR_CLUSTER',
      allowNo: true,
      helpGroup: 'GLOBAL',
    }),
    ...tlsFlags,
  }

  declare protected flags: BaseFlags<T>
  /** The context in force (named by --context / RAPTOR_CONTEXT, or the current one), if any. */
  protected context?: {name: string; context: Context}
  private busPromise?: Promise<RaptorBus>

  public override async init(): Promise<void> {
    await super.init()
    this.warnPasswordOnCommandLine()
    this.context = selectContext(this.flags.context)
    // A raptor.config.js may import zod (and raptorbus) from wherever it lives.
    const config =
      this.flags.config ?? (CONFIG_FILE_NAMES.find((name) => existsSync(name)) as string | undefined)
    if (config && /\.[cm]?js$/.test(config)) shareModules()
  }

  /** Passwords given on the command line, in the environment, or held by the context in force. */
  protected override secrets(): string[] {
    return [...super.secrets(), ...secretsOf(this.context?.context.redisUrl)]
  }

  /**
   * A password in --redis-url on the command line is readable by every user of the machine (`ps`,
   * /proc/PID/cmdline) for the life of the process: say so once, and name the safe ways.
   */
  private warnPasswordOnCommandLine(): void {
    const url = this.flags['redis-url']
    const given = this.argv.some((a) => a === '--redis-url' || a.startsWith('--redis-url='))
    if (!given || !hasPassword(url)) return
    this.note(
      'Warning: a password on the command line is visible to other users (ps); ' +
        'set REDIS_URL, or save it in a context: raptor context add NAME --redis-url …',
    )
  }

  /** Options for RaptorBus.connect from the global flags; one-shot commands do not reconnect. */
  protected busOptions(extra: BusOptions = {}): BusOptions {
    // Flag and env are merged by oclif; a context comes below both and above the config file.
    const ctx = this.context?.context
    return {
      redisUrl: this.flags['redis-url'] ?? ctx?.redisUrl,
      prefix: this.flags.prefix ?? ctx?.prefix,
      ...((this.flags.cluster ?? ctx?.cluster) === undefined
        ? {}
        : {cluster: this.flags.cluster ?? ctx?.cluster}),
      tls: this.tlsOptions(),
      config: this.flags.config ?? true,
      source: 'raptor-cli',
      reconnect: false,
      ...extra,
    }
  }

  /**
   * The TLS options of the flags, their environment variables and the context in force, per
   * setting (a client certificate and its key as one), their files read and checked. Settings they
   * leave out come from the config file's `tls`, when it has one.
   * @throws InvalidInputError naming the flag, variable or context whose file cannot be read or used
   */
  protected tlsOptions(): TlsOptions | undefined {
    const ctx = this.context
    const given = (flag: string) => this.argv.some((a) => a === flag || a.startsWith(flag + '='))
    const files: TlsFiles = {}
    const names = {} as TlsNames
    const settings = [
      ['ca', 'tls-ca', 'RAPTOR_TLS_CA', ctx?.context.tlsCa],
      ['cert', 'tls-cert', 'RAPTOR_TLS_CERT', ctx?.context.tlsCert],
      ['key', 'tls-key', 'RAPTOR_TLS_KEY', ctx?.context.tlsKey],
      ['servername', 'tls-servername', 'RAPTOR_TLS_SERVERNAME', ctx?.context.tlsServername],
    ] as const
    // The client certificate and key come from one place: the flags/env that give either, else the context.
    const pairFromFlags = this.flags['tls-cert'] !== undefined || this.flags['tls-key'] !== undefined
    for (const [setting, flag, env, fromContext] of settings) {
      const fromFlags = this.flags[flag]
      const pair = setting === 'cert' || setting === 'key'
      if (fromFlags !== undefined && fromFlags !== '') {
        files[setting] = fromFlags
        names[setting] = given(`--${flag}`) ? `--${flag}` : env
      } else if (fromContext !== undefined && !(pair && pairFromFlags)) {
        files[setting] = fromContext
        names[setting] = `${flag} of context ${ctx!.name}`
      } else names[setting] = `--${flag}`
    }
    return Object.keys(files).length === 0 ? undefined : readTlsFiles(files, names)
  }

  /** The bus, connected on first use and closed when the command ends. */
  protected bus(extra?: BusOptions): Promise<RaptorBus> {
    this.busPromise ??= import('../bus/bus.js').then(({RaptorBus}) =>
      RaptorBus.connect(this.busOptions(extra)),
    )
    return this.busPromise
  }

  protected override async finally(error: Error | undefined): Promise<void> {
    if (this.busPromise) {
      const bus = await this.busPromise.catch(() => undefined)
      await bus?.close()
    }
    return super.finally(error)
  }
}
