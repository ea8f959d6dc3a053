import {readdirSync, readFileSync} from 'node:fs'

import type {ChainableCommander} from 'ioredis'

import {anySlotPipeline, type RedisClient} from './cluster.js'

/**
 * The Lua scripts in `lua/`, one per atomic state change. Each `<name>.lua` becomes the ioredis
 * command `raptor<Name>` (`dead-letter.lua` → `raptorDeadLetter`, so none shadows a Redis command
 * such as PUBLISH). Its number of KEYS is read from its header (the highest `KEYS[n]` it names); a
 * header naming `KEYS[n..]` has a variable number, which the caller passes as the first argument.
 *
 * A module that adds a script declares its typed signature by augmenting {@link ScriptCommands}:
 * ```ts
 * declare module './scripts.js' {
 *   interface ScriptCommands { raptorRequeue(...args: (string | number)[]): Promise<number> }
 * }
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ScriptCommands {}

/** The same commands queued on a pipeline. */
export type ScriptPipeline = ChainableCommander & {
  [K in keyof ScriptCommands]: ScriptCommands[K] extends (...args: infer A) => unknown
    ? (...args: A) => ScriptPipeline
    : never
}

/** A connection with the script commands defined. */
export type ScriptedRedis = RedisClient & ScriptCommands

interface Script {
  /** The file's base name, e.g. `dead-letter`. */
  name: string
  command: string
  lua: string
  /** Undefined for a script with a variable number of keys (header `KEYS[n..]`): the caller passes it first. */
  numberOfKeys: number | undefined
}

let scripts: Script[] | undefined

/** Every script of `lua/`, read once per process. */
export function loadScripts(): Script[] {
  if (scripts) return scripts
  const dir = new URL('./lua/', import.meta.url)
  scripts = readdirSync(dir)
    .filter((f) => f.endsWith('.lua'))
    .map((file) => {
      const lua = readFileSync(new URL(file, dir), 'utf8')
      const numberOfKeys = /KEYS\[\d+\.\.\]/.test(lua)
        ? undefined
        : Math.max(0, ...[...lua.matchAll(/KEYS\[(\d+)\]/g)].map((m) => Number(m[1])))
      const command =
        'raptor' +
        file.slice(0, -4).replace(/(^|-)([a-z])/g, (_m, _dash: string, c: string) => c.toUpperCase())
      return {name: file.slice(0, -4), command, lua, numberOfKeys}
    })
  return scripts
}

/** Defines every script on a connection (EVALSHA with a NOSCRIPT fallback, by ioredis). */
export function defineScripts(redis: RedisClient): ScriptedRedis {
  for (const {command, lua, numberOfKeys} of loadScripts()) redis.defineCommand(command, {numberOfKeys, lua})
  return redis as ScriptedRedis
}

/**
 * A pipeline on which the script commands can be queued; its commands may be on different slots
 * (on a cluster each goes to its own node, see `anySlotPipeline`).
 */
export function scriptPipeline(redis: ScriptedRedis): ScriptPipeline {
  return anySlotPipeline(redis) as ScriptPipeline
}
