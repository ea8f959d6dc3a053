import {spawnSync} from 'node:child_process'

import type {Redis} from 'ioredis'

import {isCluster, masters, type RedisClient} from '../bus/cluster.js'
import type {ConnectionOptions} from '../bus/connection.js'
import {Keys} from '../bus/keys.js'
import {loadScripts} from '../bus/scripts.js'

/**
 * One line of `raptor doctor`: passed, failed (with the fix), a warning (with the fix, but not a
 * failure: e.g. what only raptor's own tests need), or could not be checked.
 */
export interface DoctorCheck {
  name: string
  status: 'ok' | 'fail' | 'warn' | 'skip'
  detail: string
  /** What to do about a failure. */
  fix?: string
}

/** Oldest Redis raptor works with (XAUTOCLAIM, XINFO lag, ACL DRYRUN need 6.2 / 7.0). */
const MIN_REDIS = [6, 2]

/**
 * Arguments for `ACL DRYRUN` of each command raptor runs (DRYRUN checks the arity): `K` stands for a
 * key under the prefix, `C` for a live pub/sub channel, `C*` for a live pattern.
 */
export const DRYRUN_ARGS: Record<string, string[]> = {
  EVALSHA: ['0'.repeat(40), '1', 'K'],
  SCRIPT: ['load', 'return 1'],
  SADD: ['K', 'x'],
  SMEMBERS: ['K'],
  PUBLISH: ['C', 'x'],
  SPUBLISH: ['C', 'x'],
  SUBSCRIBE: ['C'],
  PSUBSCRIBE: ['C*'],
  XADD: ['K', '*', 'f', 'v'],
  XRANGE: ['K', '-', '+'],
  XREVRANGE: ['K', '+', '-'],
  XLEN: ['K'],
  XDEL: ['K', '1-0'],
  XACK: ['K', 'g', '1-0'],
  XCLAIM: ['K', 'g', 'c', '0', '1-0'],
  XAUTOCLAIM: ['K', 'g', 'c', '1000', '0'],
  XPENDING: ['K', 'g'],
  XREADGROUP: ['GROUP', 'g', 'c', 'COUNT', '1', 'STREAMS', 'K', '>'],
  XGROUP: ['CREATE', 'K', 'g', '$', 'MKSTREAM'],
  XINFO: ['GROUPS', 'K'],
  XTRIM: ['K', 'MINID', '0'],
  HSET: ['K', 'f', 'v'],
  HGET: ['K', 'f'],
  HDEL: ['K', 'f'],
  HGETALL: ['K'],
  HLEN: ['K'],
  HINCRBY: ['K', 'f', '1'],
  HEXISTS: ['K', 'f'],
  SET: ['K', 'v'],
  GET: ['K'],
  DEL: ['K'],
  EXISTS: ['K'],
  PEXPIRE: ['K', '1000'],
  PTTL: ['K'],
  EXPIRE: ['K', '1'],
  UNLINK: ['K'],
  SCAN: ['0'],
  INFO: [],
  TIME: [],
}

/** Commands the scripts run on a Redis Cluster only. */
const SHARDED_PUBSUB = new Set(['SPUBLISH'])

/** Commands the client runs itself (the scripts' own commands are read from `lua/`), by role. */
const CLIENT_COMMANDS: Record<string, string[]> = {
  publish: ['EVALSHA', 'SCRIPT', 'SADD', 'PUBLISH'],
  agent: ['EVALSHA', 'XREADGROUP', 'XGROUP', 'XAUTOCLAIM', 'XPENDING', 'XINFO'],
  read: [
    'XRANGE',
    'XINFO',
    'XLEN',
    'SMEMBERS',
    'HGETALL',
    'SCAN',
    'SUBSCRIBE',
    'PSUBSCRIBE',
    'INFO',
    'TIME',
    'XREVRANGE',
  ],
  dlq: ['XRANGE', 'XDEL', 'EVALSHA'],
}

/** Which role runs a script: publishing, a requeue, or (all the others) an agent consuming. */
function roleOf(script: string): string {
  return script === 'publish' ? 'publish' : /^(requeue|republish)$/.test(script) ? 'dlq' : 'agent'
}

/** The Redis commands a Lua script calls (`redis.call('XADD', …)`), upper-cased. */
export function scriptCommands(lua: string): string[] {
  return [
    ...new Set([...lua.matchAll(/redis\.p?call\(\s*['"]([A-Za-z]+)['"]/g)].map((m) => m[1].toUpperCase())),
  ]
}

/** Every command raptor runs, by role: the client's own and those inside its Lua scripts. */
export function commandsByRole(): Map<string, string[]> {
  const roles = new Map(Object.entries(CLIENT_COMMANDS).map(([role, list]) => [role, [...list]]))
  for (const {name, lua} of loadScripts()) {
    const list = roles.get(roleOf(name))!
    for (const command of scriptCommands(lua)) if (!list.includes(command)) list.push(command)
  }
  return roles
}

function info(text: string, field: string): string {
  return new RegExp(`^${field}:(.*)$`, 'm').exec(text)?.[1]?.trim() ?? ''
}

/** Redis itself: version, database index, standalone/cluster/sentinel. */
export async function redisChecks(client: RedisClient, db: number): Promise<DoctorCheck[]> {
  // On a cluster: one master speaks for the version (the others were asked when connecting).
  const redis = masters(client)[0]
  const text = await redis.info('server').catch(() => '')
  const version = info(text, 'redis_version')
  const mode = info(text, 'redis_mode') || 'standalone'
  const [major, minor] = version.split('.').map(Number)
  const checks: DoctorCheck[] = [
    major > MIN_REDIS[0] || (major === MIN_REDIS[0] && minor >= MIN_REDIS[1])
      ? {name: 'redis version', status: 'ok', detail: `${version} (${mode})`}
      : {
          name: 'redis version',
          status: 'fail',
          detail: `${version || 'unknown'}: raptor needs Redis ${MIN_REDIS.join('.')} or later`,
          fix: 'upgrade Redis (7.x recommended)',
        },
  ]
  if (mode === 'cluster' && isCluster(client))
    checks.push({
      name: 'deployment',
      status: 'ok',
      detail: `Redis Cluster of ${masters(client).length} masters`,
    })
  else if (mode === 'cluster')
    checks.push({
      name: 'deployment',
      status: 'fail',
      detail: 'a Redis Cluster node, reached with a single-server client (--no-cluster)',
      fix: 'drop --no-cluster / RAPTOR_CLUSTER=0: raptor detects the cluster',
    })
  else if (mode === 'sentinel')
    checks.push({
      name: 'deployment',
      status: 'fail',
      detail: 'this is a Sentinel, not a data node',
      fix: 'point --redis-url at the master Sentinel names (SENTINEL get-master-addr-by-name NAME)',
    })
  else checks.push({name: 'deployment', status: 'ok', detail: 'standalone'})
  // A Sentinel holds no data; a cluster has database 0 only.
  if (mode === 'sentinel') return checks
  if (mode === 'cluster') {
    if (db !== 0)
      checks.push({
        name: 'database',
        status: 'fail',
        detail: `db ${db}: a Redis Cluster has database 0 only`,
        fix: 'use /0 at the end of the URL',
      })
    return checks
  }
  const databases = await redis
    .config('GET', 'databases')
    .then((r) => Number((r as string[])[1]))
    .catch(() => undefined)
  const range = databases === undefined ? '' : ` (the server has ${databases}: 0–${databases - 1})`
  // SELECT is the test that counts (CONFIG may be refused to this user); the connection stays there.
  const selected = await redis.select(db).then(
    () => undefined,
    (error: Error) => error.message,
  )
  if (selected !== undefined)
    checks.push({
      name: 'database',
      status: 'fail',
      detail: `db ${db} does not exist${range || ` (${selected})`}`,
      fix:
        databases === undefined
          ? 'use a database the server has: /0 at the end of the URL always works'
          : `use /0 … /${databases - 1} at the end of the URL`,
    })
  else
    checks.push({
      name: 'database',
      status: 'ok',
      detail: `db ${db}${databases === undefined ? '' : ` of ${databases}`}`,
    })
  return checks
}

/**
 * Whether this user may run what raptor runs, by `ACL DRYRUN` of every command (the client's and
 * those its Lua scripts call, which Redis checks too) on keys and channels under the prefix; skipped
 * when it cannot be asked (Redis < 7, or DRYRUN itself not allowed).
 */
export async function aclCheck(client: RedisClient, prefix: string, db = 0): Promise<DoctorCheck> {
  // ACL users are per node; a cluster's nodes are set up alike: one master answers for them.
  const redis: Redis = masters(client)[0]
  const user = await redis.call('ACL', 'WHOAMI').catch(() => undefined)
  if (typeof user !== 'string')
    return {
      name: 'permissions',
      status: 'skip',
      detail: 'cannot ask Redis who this user is (ACL WHOAMI refused)',
    }
  // Pub/sub names carry the database (pub/sub ignores databases): the ones this user will use.
  const keys = new Keys(prefix, db)
  const fill = (a: string) =>
    a === 'K'
      ? keys.stream('doctor')
      : a === 'C'
        ? keys.live('doctor')
        : a === 'C*'
          ? keys.livePattern('**')
          : a
  const denied: string[] = []
  const missing = new Set<string>()
  // What the refusals were about: the fix names only what is lacking (a rule adding ~pattern to a
  // user with allkeys is an error in Redis).
  let keysRefused = false
  const channels = new Set<string>()
  for (const [role, commands] of commandsByRole()) {
    const refused: string[] = []
    for (const name of commands) {
      // Sharded pub/sub is what the scripts use on a cluster only (live fan-out and bells).
      if (!isCluster(client) && SHARDED_PUBSUB.has(name)) continue
      const args = (DRYRUN_ARGS[name] ?? ['K']).map(fill)
      let answer: unknown
      try {
        answer = await redis.call('ACL', 'DRYRUN', user, name, ...args)
      } catch (error) {
        const message = (error as Error).message
        if (
          /NOPERM|unknown subcommand|unknown command/i.test(message) &&
          denied.length + refused.length === 0
        )
          return {
            name: 'permissions',
            status: 'skip',
            detail: `cannot check (ACL DRYRUN: ${message.split('\n')[0]})`,
          }
        answer = message
      }
      if (answer === 'OK') continue
      const why = String(answer)
      // Arguments this table lacks (a test keeps it complete): not evidence of a refusal.
      if (/wrong number of arguments/i.test(why)) continue
      if (/ key\b/.test(why)) keysRefused = true
      // PSUBSCRIBE patterns are matched literally by Redis: the pattern itself must be allowed.
      else if (/ channel\b/.test(why)) channels.add(name === 'PSUBSCRIBE' ? args[0] : `${prefix}:*`)
      else refused.push(name)
    }
    if (refused.length > 0) denied.push(`${role} (${refused.join(', ')})`)
    for (const name of refused) missing.add(`+${name.toLowerCase()}`)
  }
  if (keysRefused) denied.push(`keys ${prefix}:*`)
  if (channels.size > 0) denied.push(`pub/sub ${[...channels].join(', ')}`)
  if (denied.length === 0)
    return {name: 'permissions', status: 'ok', detail: `user ${user} may run every command raptor uses`}
  const rule = [...(keysRefused ? [`~${prefix}:*`] : []), ...[...channels].map((c) => `&${c}`), ...missing]
  return {
    name: 'permissions',
    status: 'fail',
    detail: `user ${user} may not run what raptor needs for ${denied.join(', ')}`,
    fix: `ACL SETUSER ${user} ${rule.join(' ')} (or only what the roles of this user need)`,
  }
}

/** `redis-server` on the PATH: only needed to run raptor's own tests. */
export function redisServerCheck(): DoctorCheck {
  const r = spawnSync('redis-server', ['--version'], {encoding: 'utf8'})
  if (r.status === 0)
    return {
      name: 'redis-server (tests)',
      status: 'ok',
      detail: r.stdout.trim().split(' ').slice(0, 3).join(' '),
    }
  return {
    name: 'redis-server (tests)',
    status: 'warn',
    detail: 'not on the PATH: npm test starts its own servers and cannot run',
    fix: 'apt-get install redis-server redis-tools (macOS: brew install redis); only needed for the tests',
  }
}

/** Where a setting came from, for the report. */
export type Origin = 'flag' | 'env' | 'context' | 'config file' | 'default'

/** The settings doctor connects with. */
export interface Settings extends ConnectionOptions {
  redisUrl: string
  prefix: string
  origins: {redisUrl: Origin; prefix: Origin}
}
