import {existsSync, readFileSync} from 'node:fs'
import {dirname, resolve} from 'node:path'
import {pathToFileURL} from 'node:url'

import {RETENTION_BOUNDS, type ChannelConfig} from './channels.js'
import {parseDuration} from './durations.js'
import {ConfigError} from './errors.js'
import {formatIssues, toIssues, type PayloadSchema, type PayloadSchemas} from './envelope.js'
import type {TlsFiles} from './tls.js'

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
  /**
   * TLS files for a `rediss://` URL (paths relative to the config file), below the `--tls-*` flags,
   * their environment variables and a context.
   */
  tls?: TlsFiles
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
      tls: z
        .object({
          ca: z.string().optional(),
          cert: z.string().optional(),
          key: z.string().optional(),
          servername: z.string().optional(),
        })
        .strict()
        .optional(),
    })
    .strict()

function isZodLike(value: unknown): value is PayloadSchema {
  return (
    typeof value === 'object' && value !== null && typeof (value as PayloadSchema).safeParse === 'function'
  )
}

/** Keywords that apply a subschema to the same value (so a cycle through them never ends). */
const SAME_VALUE = ['allOf', 'anyOf', 'oneOf', 'not', 'if', 'then', 'else'] as const

/** The subschema a local `$ref` (`#`, `#/$defs/x`) points to, or undefined. */
function resolveRef(root: unknown, ref: string): unknown {
  if (!ref.startsWith('#')) return undefined
  let node = root
  for (const raw of ref.slice(1).split('/').slice(1)) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~')
    if (typeof node !== 'object' || node === null) return undefined
    node = (node as Record<string, unknown>)[key]
  }
  return node
}

/**
 * A `$ref` cycle that never descends into the value (`{"$ref":"#"}`, or `a` → `b` → `a` through
 * `allOf`…): validating anything that reaches it recurses until the stack overflows. Cycles through
 * `properties`/`items` are fine (a tree), since each step consumes part of the value.
 * @returns the `$ref` that closes the cycle, or undefined
 */
export function endlessRef(root: unknown): string | undefined {
  const done = new Set<object>()
  const visiting = new Set<object>()
  const visit = (node: unknown, via: string): string | undefined => {
    if (typeof node !== 'object' || node === null || done.has(node)) return undefined
    if (visiting.has(node)) return via
    visiting.add(node)
    const schema = node as Record<string, unknown>
    const next: [unknown, string][] = []
    if (typeof schema.$ref === 'string') next.push([resolveRef(root, schema.$ref), schema.$ref])
    for (const key of SAME_VALUE) {
      const value = schema[key]
      if (Array.isArray(value)) for (const sub of value) next.push([sub, via])
      else if (value !== undefined) next.push([value, via])
    }
    for (const [sub, how] of next) {
      const found = visit(sub, how)
      if (found) return found
    }
    visiting.delete(node)
    done.add(node)
    return undefined
  }
  // Every subschema can be entered, so start from each one.
  const seen = new Set<object>()
  const walk = (node: unknown): string | undefined => {
    if (typeof node !== 'object' || node === null || seen.has(node)) return undefined
    seen.add(node)
    const found = visit(node, '#')
    if (found) return found
    for (const value of Object.values(node)) {
      const inner = walk(value)
      if (inner) return inner
    }
    return undefined
  }
  return walk(root)
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
  // Retentions are checked here, naming the key: a bad one would otherwise break every publish.
  for (const [i, channel] of (config.channels ?? []).entries()) {
    try {
      parseDuration(channel.retention, `channels[${i}].retention (${channel.name})`, RETENTION_BOUNDS)
    } catch (error) {
      throw new ConfigError(`invalid config ${file}: ${(error as Error).message}`, {path: file})
    }
  }
  // Read the types from the file's own keys, into a map with no prototype: a type may be named
  // `__proto__` or `constructor` (zod's record copy would turn `__proto__` into the map's prototype).
  const schemas: PayloadSchemas = Object.create(null)
  const given = ((raw as {schemas?: Record<string, unknown>}).schemas ?? {}) as Record<string, unknown>
  for (const type of Object.keys(given)) {
    const schema = given[type]
    if (isZodLike(schema)) {
      schemas[type] = schema
    } else if (typeof schema === 'object' && schema !== null) {
      const cycle = endlessRef(schema)
      if (cycle !== undefined)
        throw new ConfigError(
          `invalid JSON Schema for type '${type}' (schemas.${type}) in ${file}: "$ref": "${cycle}" refers back to itself without descending into the value, so validation would never end`,
          {path: file},
        )
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
  // TLS files are relative to the config file, wherever raptor runs from.
  const tls = config.tls && {
    ...config.tls,
    ...Object.fromEntries(
      (['ca', 'cert', 'key'] as const)
        .filter((k) => config.tls?.[k] !== undefined)
        .map((k) => [k, resolve(dirname(file), config.tls![k]!)]),
    ),
  }
  return {...config, schemas, ...(tls ? {tls} : {})}
}
