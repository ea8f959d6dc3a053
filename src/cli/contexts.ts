import {chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync} from 'node:fs'
import {homedir} from 'node:os'
import {dirname, join} from 'node:path'

import {redactUrl} from '../bus/connection.js'
import {ConfigError, InvalidInputError} from '../bus/errors.js'

/** Named connection settings (SPEC §8), like `nats context` and `rpk profile`. */
export interface Context {
  /** Redis URL; may hold a password (the file is 0600, and it is shown as `***`). */
  redisUrl: string
  prefix?: string
  /** TLS files, for `rediss://`. */
  tlsCa?: string
  tlsCert?: string
  tlsKey?: string
  tlsServername?: string
  /** Redis Cluster: true forces a cluster client, false a single-server one (unset: detected). */
  cluster?: boolean
  description?: string
}

/** The contexts file: every context, and the one in use when none is named. */
export interface ContextsFile {
  current?: string
  contexts: Record<string, Context>
}

/** Context names: what a user can type without quoting. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/

/** `$XDG_CONFIG_HOME/raptor/contexts.json`, or `~/.config/raptor/contexts.json`. */
export function contextsPath(env: NodeJS.ProcessEnv = process.env): string {
  const base =
    env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME !== '' ? env.XDG_CONFIG_HOME : join(homedir(), '.config')
  return join(base, 'raptor', 'contexts.json')
}

/** @throws InvalidInputError when the name cannot be a context name. */
export function assertContextName(name: string): void {
  if (!NAME.test(name))
    throw new InvalidInputError(
      `invalid context name '${name}': use letters, digits, _ . - (up to 64), e.g. prod or staging-eu`,
    )
}

/**
 * Reads the contexts file (an empty one when it does not exist). The file holds passwords, so one
 * that others can read is refused, as ssh refuses a private key with loose permissions.
 * @throws ConfigError when it is readable by group/others or is not valid
 */
export function readContexts(path = contextsPath()): ContextsFile {
  if (!existsSync(path)) return {contexts: {}}
  const mode = statSync(path).mode & 0o777
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new ConfigError(
      `contexts file ${path} is open to other users (mode ${mode.toString(8).padStart(4, '0')}): it may hold passwords; run chmod 600 ${path}`,
      {path},
    )
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch (error) {
    throw new ConfigError(`cannot read contexts file ${path}: ${(error as Error).message}`, {path})
  }
  const file = parsed as Partial<ContextsFile>
  if (
    typeof file !== 'object' ||
    file === null ||
    typeof file.contexts !== 'object' ||
    file.contexts === null
  )
    throw new ConfigError(
      `contexts file ${path} is not a raptor contexts file: move it away and add contexts again`,
      {path},
    )
  const contexts: Record<string, Context> = Object.create(null) as Record<string, Context>
  for (const [name, ctx] of Object.entries(file.contexts)) {
    if (typeof ctx?.redisUrl !== 'string')
      throw new ConfigError(
        `context '${name}' in ${path} has no redisUrl: raptor context add ${name} --force --redis-url …`,
        {path},
      )
    contexts[name] = ctx
  }
  return {current: typeof file.current === 'string' ? file.current : undefined, contexts}
}

/** Writes the contexts file atomically with mode 0600 (its directory 0700). */
export function writeContexts(file: ContextsFile, path = contextsPath()): void {
  mkdirSync(dirname(path), {recursive: true, mode: 0o700})
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, JSON.stringify(file, null, 2) + '\n', {mode: 0o600})
  chmodSync(tmp, 0o600)
  renameSync(tmp, path)
}

/**
 * The context to use: the one named (by `--context` or `RAPTOR_CONTEXT`), else the current one.
 * @throws InvalidInputError when the named context does not exist
 */
export function selectContext(
  name: string | undefined,
  path = contextsPath(),
): {name: string; context: Context} | undefined {
  if (name === undefined && !existsSync(path)) return undefined
  const file = readContexts(path)
  const chosen = name ?? file.current
  if (chosen === undefined) return undefined
  const context = file.contexts[chosen]
  if (!context) {
    const known = Object.keys(file.contexts)
    throw new InvalidInputError(
      `no context '${chosen}'${known.length > 0 ? ` (known: ${known.join(', ')})` : ''}: ` +
        `create it with raptor context add ${chosen} --redis-url redis://HOST:6379/0`,
      {context: chosen},
    )
  }
  return {name: chosen, context}
}

/** A context as it may be printed: the password in its URL replaced by `***`. */
export function redactContext(context: Context): Context {
  return {...context, redisUrl: redactUrl(context.redisUrl)}
}
