import {format} from 'node:util'

import {Command, Flags, type Interfaces} from '@oclif/core'

import type {BusOptions, RaptorBus} from '../bus/bus.js'
import {hasPassword, redactText, secretsOf} from '../bus/url.js'
import {ExitCode, exitCodeFor} from './exit-codes.js'
import {stdoutWriter, type OutputWriter} from './writer.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<
  (typeof BaseCommand)['baseFlags'] & T['flags']
>
export type BaseArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

/**
 * The base of every raptor command: the global flags (with environment fallbacks), a lazily opened
 * bus closed in `finally()`, and one `catch()` mapping errors to the exit-code table.
 */
export abstract class BaseCommand<T extends typeof Command> extends Command {
  static override enableJsonFlag = true

  static override baseFlags = {
    'redis-url': Flags.string({
      summary: 'Redis URL (rediss:// for TLS).',
      description: 'Precedence: flag > REDIS_URL > config file > redis://127.0.0.1:6379/0.',
      env: 'REDIS_URL',
      helpGroup: 'GLOBAL',
    }),
    prefix: Flags.string({
      summary: 'Key prefix; two prefixes never see each other.',
      description: 'Precedence: flag > RAPTOR_PREFIX > config file > raptor.',
      env: 'RAPTOR_PREFIX',
      helpGroup: 'GLOBAL',
    }),
    config: Flags.string({
      summary: 'Config file (raptor.config.json|js|mjs).',
      description: 'Defaults to ./raptor.config.js, .mjs or .json when present.',
      env: 'RAPTOR_CONFIG',
      helpGroup: 'GLOBAL',
    }),
  }

  protected flags!: BaseFlags<T>
  protected args!: BaseArgs<T>
  /** Every positional argument, for commands with `strict = false` (any number of them). */
  protected argList: string[] = []
  private busPromise?: Promise<RaptorBus>

  public override async init(): Promise<void> {
    await super.init()
    const {args, flags, argv} = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (super.ctor as typeof BaseCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      args: this.ctor.args,
      strict: this.ctor.strict,
    })
    this.flags = flags as BaseFlags<T>
    this.args = args as BaseArgs<T>
    this.argList = argv as string[]
    // From the start: a closed pipe (EPIPE) is then handled, whatever writes first.
    stdoutWriter()
    this.warnPasswordOnCommandLine()
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

  /** Passwords the command was given (flag, environment): scrubbed from every error it prints. */
  protected secrets(): string[] {
    return [...secretsOf(this.flags?.['redis-url']), ...secretsOf(process.env.REDIS_URL)]
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
    return {
      redisUrl: this.flags['redis-url'],
      prefix: this.flags.prefix,
      config: this.flags.config ?? true,
      source: 'raptor-cli',
      reconnect: false,
      ...extra,
    }
  }

  /** The bus, connected on first use and closed when the command ends. */
  protected bus(extra?: BusOptions): Promise<RaptorBus> {
    this.busPromise ??= import('../bus/bus.js').then(({RaptorBus}) =>
      RaptorBus.connect(this.busOptions(extra)),
    )
    return this.busPromise
  }

  /** Writes one line to stderr, even under --json (logs and progress never go to stdout). */
  protected note(message: string): void {
    process.stderr.write(message + '\n')
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
    if (this.busPromise) {
      const bus = await this.busPromise.catch(() => undefined)
      await bus?.close()
    }
    await this.out.end()
    return super.finally(error)
  }
}
