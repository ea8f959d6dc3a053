import {createHash} from 'node:crypto'

import type {Redis} from 'ioredis'

import {PermissionError} from './errors.js'
import {loadScripts} from './scripts.js'

/**
 * Redis ACL users: what a denied command means, said in terms of the user and the command (also a
 * command run inside one of raptor's Lua scripts), and reads that degrade instead of failing.
 */

/** `NOPERM …`, and its form when a command inside a script is denied. */
const DENIED = /\bNOPERM\b|can't run this command or subcommand|no permissions to (run|access)/i

/** True when Redis refused a command for the user's ACL rules. */
export function isPermissionDenied(error: unknown): boolean {
  return error instanceof PermissionError || DENIED.test((error as Error)?.message ?? '')
}

let scriptsBySha: Map<string, {name: string; lines: string[]}> | undefined

/** The command a line of one of raptor's scripts runs (`redis.call('XADD', …)` → `XADD`), by the script's SHA1. */
function scriptCommand(sha: string, line: number): {script: string; command?: string} | undefined {
  scriptsBySha ??= new Map(
    loadScripts().map((s) => [
      createHash('sha1').update(s.lua).digest('hex'),
      {name: s.name, lines: s.lua.split('\n')},
    ]),
  )
  const script = scriptsBySha.get(sha.toLowerCase())
  if (!script) return undefined
  const text = script.lines[line - 1] ?? ''
  const call = /redis\.p?call\(\s*'([A-Za-z]+)'(?:\s*,\s*'([A-Za-z]+)')?/.exec(text)
  const sub = call?.[2] && /^(XINFO|XGROUP|CLIENT|OBJECT)$/i.test(call[1]) ? `|${call[2]}` : ''
  return {script: script.name, command: call ? `${call[1]}${sub}`.toLowerCase() : undefined}
}

/** What the ioredis error says about the command it was for. */
function commandOf(error: unknown): {name?: string; args: unknown[]} {
  const command = (error as {command?: {name?: string; args?: unknown[]}})?.command
  return {name: command?.name?.toLowerCase(), args: command?.args ?? []}
}

/**
 * Turns a Redis `NOPERM` refusal into a {@link PermissionError} that names the user, the command
 * (also one run inside a raptor script, found by the script's line) and the rule to add.
 * @param user the ACL user the connection is authenticated as (`default` when the URL has none)
 * @returns the error unchanged when it is not a permission refusal
 */
export function permissionError(error: unknown, user = 'default'): unknown {
  if (error instanceof PermissionError || !isPermissionDenied(error)) return error
  const message = ((error as Error).message ?? '').replace(/\s+/g, ' ').trim()
  const {name, args} = commandOf(error)
  let command = /'([a-z|]+)' command/i.exec(message)?.[1]?.toLowerCase()
  let where = ''
  const line = /@user_script:(\d+)/.exec(message)?.[1]
  const sha =
    /script: ([0-9a-f]{40})/i.exec(message)?.[1] ?? (name === 'evalsha' ? String(args[0]) : undefined)
  if (line && sha) {
    const found = scriptCommand(sha, Number(line))
    if (found) {
      where = ` inside raptor's ${found.script} script`
      command ??= found.command
    }
  }
  command ??= name
  const what = /access one of the keys/i.test(message)
    ? `may not access the keys of ${command?.toUpperCase() ?? 'a command'}${where}: its key rule must cover the prefix (~PREFIX:*)`
    : /access one of the channels/i.test(message)
      ? `may not use the pub/sub channel of ${command?.toUpperCase() ?? 'a command'}${where}: its channel rules must cover it (a PSUBSCRIBE pattern must be listed literally, see the README's ACL rules)`
      : `may not run ${command?.toUpperCase() ?? 'this command'}${where}: grant it with ACL SETUSER ${user} +${command ?? '<command>'} (the README's ACL rules list what each role needs)`
  return new PermissionError(
    `permission denied: Redis user '${user}' ${what} (${message.replace(/ script: [0-9a-f]{40}.*$/i, '')})`,
    {user, command},
    {cause: error},
  )
}

/** A read the user may not make: its answer is unknown, and said so, instead of failing the whole report. */
export interface UnreadablePart {
  /** What could not be read, e.g. `INFO` or `CLIENT LIST`. */
  command: string
  /** What it would have given, e.g. `version, clients, memory, uptime`. */
  gives: string
  /** Redis's refusal. */
  reason: string
}

/**
 * Runs a read that a restricted ACL user may be refused; a refusal is recorded in `unreadable`
 * and gives undefined, any other error is thrown.
 */
export async function readIfPermitted<T>(
  read: () => Promise<T>,
  part: Omit<UnreadablePart, 'reason'>,
  unreadable: UnreadablePart[],
): Promise<T | undefined> {
  try {
    return await read()
  } catch (error) {
    if (!isPermissionDenied(error)) throw error
    unreadable.push({...part, reason: ((error as Error).message ?? '').split('\n')[0]})
    return undefined
  }
}

/**
 * Waits until Redis has loaded its data set (`loading:0`), as ioredis's ready check does, but
 * quietly for a user that may not run INFO: ioredis's own check prints "Skipping the ready check"
 * with `console.warn` then, so connections turn it off and run this one instead.
 */
export async function waitUntilLoaded(redis: Redis, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let info: string
    try {
      info = await redis.info('persistence')
    } catch (error) {
      if (isPermissionDenied(error)) return
      throw error
    }
    if (!/^loading:1/m.test(info) || Date.now() >= deadline) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
