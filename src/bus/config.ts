import {existsSync, readFileSync} from 'node:fs'
import {resolve} from 'node:path'
import {pathToFileURL} from 'node:url'

import type {ChannelConfig} from './channels.js'
import {ConfigError} from './errors.js'
import {formatIssues, toIssues, type PayloadSchema, type PayloadSchemas} from './envelope.js'

/** Default limit on a payload's serialized size: 1 MiB. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024

/** Config file names looked for in the working directory, in this order. */
export const CONFIG_FILE_NAMES = ['raptor.config.js', 'raptor.config.mjs', 'raptor.config.json'] as const

/**
 * The config file (`raptor.config.json`, or `raptor.config.js`/`.mjs` whose default export is this object).
 * A JSON config gives payload schemas as JSON Schema; a JS config may give zod schemas.
 */
export interface RaptorConfig {
  /** Redis URL, below the `--redis-url` flag and `REDIS_URL`. */
  redisUrl?: string
  /** Key prefix, below the `--prefix` flag and `RAPTOR_PREFIX`. */
  prefix?: string
  /** Channels and channel patterns added to the built-in topology. */
  channels?: ChannelConfig[]
  /** Payload schema per event type: zod schemas (JS config) or JSON Schemas (JSON config). */
  schemas?: Record<string, PayloadSchema>
  /** Largest payload accepted, in bytes. @defaultValue 1 MiB */
  maxPayloadBytes?: number
}

/** The config file's shape; built on first use so that zod is loaded only when there is a config. */
const configFileSchema = (z: typeof import('zod').z) =>
  z
    .object({
      redisUrl: z.string().optional(),
      prefix: z.string().optional(),
      channels: z
        .array(z.object({name: z.string(), retention: z.union([z.string(), z.number().positive()])}).strict())
        .optional(),
      schemas: z.record(z.string(), z.unknown()).optional(),
      maxPayloadBytes: z.number().int().positive().optional(),
    })
    .strict()

function isZodLike(value: unknown): value is PayloadSchema {
  return (
    typeof value === 'object' && value !== null && typeof (value as PayloadSchema).safeParse === 'function'
  )
}

/** Finds the config file: the given path, or the first of CONFIG_FILE_NAMES in `cwd`. */
export function findConfigFile(path: string | undefined, cwd = process.cwd()): string | undefined {
  if (path) {
    const full = resolve(cwd, path)
    if (!existsSync(full)) throw new ConfigError(`config file not found: ${path}`, {path})
    return full
  }
  for (const name of CONFIG_FILE_NAMES) {
    const full = resolve(cwd, name)
    if (existsSync(full)) return full
  }
  return undefined
}

/**
 * Loads and checks a config file. JSON Schemas in a JSON config become zod schemas.
 * @throws ConfigError naming the file and the field at fault
 */
export async function loadConfig(path: string | undefined, cwd = process.cwd()): Promise<RaptorConfig> {
  const file = findConfigFile(path, cwd)
  if (!file) return {}
  let raw: unknown
  try {
    if (file.endsWith('.json')) {
      raw = JSON.parse(readFileSync(file, 'utf8'))
    } else {
      const mod = (await import(pathToFileURL(file).href)) as {default?: unknown}
      raw = mod.default ?? mod
    }
  } catch (error) {
    throw new ConfigError(
      `cannot read config ${file}: ${(error as Error).message}`,
      {path: file},
      {cause: error},
    )
  }
  const {z} = await import('zod')
  const parsed = configFileSchema(z).safeParse(raw)
  if (!parsed.success)
    throw new ConfigError(`invalid config ${file}: ${formatIssues(toIssues(parsed.error))}`, {path: file})
  const config = parsed.data
  // Read the types from the file's own keys, into a map with no prototype: a type may be named
  // `__proto__` or `constructor` (zod's record copy would turn `__proto__` into the map's prototype).
  const schemas: PayloadSchemas = Object.create(null)
  const given = ((raw as {schemas?: Record<string, unknown>}).schemas ?? {}) as Record<string, unknown>
  for (const type of Object.keys(given)) {
    const schema = given[type]
    if (isZodLike(schema)) {
      schemas[type] = schema
    } else if (typeof schema === 'object' && schema !== null) {
      try {
        schemas[type] = z.fromJSONSchema(
          schema as Parameters<typeof z.fromJSONSchema>[0],
        ) as unknown as PayloadSchema
      } catch (error) {
        throw new ConfigError(
          `invalid JSON Schema for type '${type}' in ${file}: ${(error as Error).message}`,
          {path: file},
        )
      }
    } else {
      throw new ConfigError(
        `schema for type '${type}' in ${file} must be a zod schema or a JSON Schema object`,
        {path: file},
      )
    }
  }
  return {...config, schemas}
}
