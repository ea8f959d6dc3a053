import {readFileSync} from 'node:fs'

import type {ChainableCommander, Redis} from 'ioredis'

/**
 * The Lua scripts in `lua/`, one per atomic state change: file name → number of KEYS.
 * Each becomes the ioredis command `raptor<Name>` (`dead-letter.lua` → `raptorDeadLetter`, so none shadows a Redis command such as PUBLISH).
 */
const SCRIPTS = {
  publish: 3,
  park: 2,
} as const

type ScriptName = keyof typeof SCRIPTS

/** The script commands that `defineScripts` adds to a connection. */
export interface ScriptCommands {
  raptorPublish(
    stream: string,
    index: string,
    stats: string,
    json: string,
    retentionMs: number,
    live: string,
  ): Promise<string>
  raptorPark(
    dlq: string,
    stats: string,
    json: string,
    reason: string,
    channel: string,
    error: string,
    retentionMs: number,
  ): Promise<string>
}

/** The same commands on a pipeline. */
export type ScriptPipeline = ChainableCommander & {
  [K in keyof ScriptCommands]: (...args: Parameters<ScriptCommands[K]>) => ScriptPipeline
}

/** A connection with the script commands defined. */
export type ScriptedRedis = Redis & ScriptCommands

/** A pipeline on which the script commands can be queued. */
export function scriptPipeline(redis: ScriptedRedis): ScriptPipeline {
  return redis.pipeline() as ScriptPipeline
}

const sources = new Map<ScriptName, string>()

/** The Lua source of a script (read once per process). */
export function scriptSource(name: ScriptName): string {
  let lua = sources.get(name)
  if (lua === undefined) {
    lua = readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8')
    sources.set(name, lua)
  }
  return lua
}

/** Defines every script on a connection (EVALSHA with a NOSCRIPT fallback, by ioredis). */
export function defineScripts(redis: Redis): ScriptedRedis {
  for (const [name, numberOfKeys] of Object.entries(SCRIPTS) as [ScriptName, number][]) {
    const command =
      'raptor' + name.replace(/(^|-)([a-z])/g, (_m, _dash: string, c: string) => c.toUpperCase())
    redis.defineCommand(command, {numberOfKeys, lua: scriptSource(name)})
  }
  return redis as ScriptedRedis
}
