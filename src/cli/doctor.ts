import {spawnSync} from 'node:child_process'

import type {Redis} from 'ioredis'

import type {ConnectionOptions} from '../bus/connection.js'

/** One line of `raptor doctor`: passed, failed (with the fix), or could not be checked. */
export interface DoctorCheck {
  name: string
  status: 'ok' | 'fail' | 'skip'
  detail: string
  /** What to do about a failure. */
  fix?: string
}

/** Oldest Redis raptor works with (XAUTOCLAIM, XINFO lag, ACL DRYRUN need 6.2 / 7.0). */
const MIN_REDIS = [6, 2]

/** The commands each role runs (SPEC §7), checked with `ACL DRYRUN` against a key under the prefix. */
const COMMANDS: Record<string, string[][]> = {
  publish: [
    ['evalsha', '0'.repeat(40), '1', 'K'],
    ['script', 'load', 'return 1'],
    ['sadd', 'K', 'x'],
    ['publish', 'C', 'x'],
  ],
  consume: [
    ['xreadgroup', 'GROUP', 'g', 'c', 'COUNT', '1', 'STREAMS', 'K', '>'],
    ['xgroup', 'CREATE', 'K', 'g', '$', 'MKSTREAM'],
    ['xautoclaim', 'K', 'g', 'c', '1000', '0'],
    ['xpending', 'K', 'g'],
    ['hset', 'K', 'f', 'v'],
  ],
  read: [
    ['xrange', 'K', '-', '+'],
    ['xinfo', 'GROUPS', 'K'],
    ['xlen', 'K'],
    ['smembers', 'K'],
    ['hgetall', 'K'],
    ['scan', '0'],
    ['subscribe', 'C'],
    ['psubscribe', 'C*'],
    ['info'],
    ['time'],
  ],
  dlq: [
    ['xdel', 'K', '1-0'],
    ['unlink', 'K'],
  ],
}

function info(text: string, field: string): string {
  return new RegExp(`^${field}:(.*)$`, 'm').exec(text)?.[1]?.trim() ?? ''
}

/** Redis itself: version, database index, standalone/cluster/sentinel. */
export async function redisChecks(redis: Redis, url: string): Promise<DoctorCheck[]> {
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
  if (mode === 'cluster')
    checks.push({
      name: 'deployment',
      status: 'fail',
      detail: 'Redis Cluster detected: raptor does not run on a cluster yet',
      fix: 'point --redis-url at a standalone Redis (or a Sentinel-managed master) for now',
    })
  else if (mode === 'sentinel')
    checks.push({
      name: 'deployment',
      status: 'fail',
      detail: 'this is a Sentinel, not a data node',
      fix: 'point --redis-url at the master Sentinel names (SENTINEL get-master-addr-by-name NAME)',
    })
  else checks.push({name: 'deployment', status: 'ok', detail: 'standalone'})
  const db = Number(new URL(url).pathname.replace(/^\//, '') || 0)
  const databases = await redis
    .config('GET', 'databases')
    .then((r) => Number((r as string[])[1]))
    .catch(() => undefined)
  if (databases !== undefined && db >= databases)
    checks.push({
      name: 'database',
      status: 'fail',
      detail: `db ${db} does not exist (the server has ${databases}: 0–${databases - 1})`,
      fix: `use /0 … /${databases - 1} at the end of the URL`,
    })
  else
    checks.push({
      name: 'database',
      status: 'ok',
      detail: `db ${db}${databases === undefined ? '' : ` of ${databases}`}`,
    })
  return checks
}

/** Whether this user may run what raptor runs, by `ACL DRYRUN` (skipped when it cannot be asked). */
export async function aclCheck(redis: Redis, prefix: string): Promise<DoctorCheck> {
  const user = await redis.call('ACL', 'WHOAMI').catch(() => undefined)
  if (typeof user !== 'string')
    return {
      name: 'permissions',
      status: 'skip',
      detail: 'cannot ask Redis who this user is (ACL WHOAMI refused)',
    }
  const key = `${prefix}:ch:{doctor}:stream`
  const denied: string[] = []
  for (const [role, commands] of Object.entries(COMMANDS)) {
    for (const [name, ...args] of commands) {
      const filled = args.map((a) =>
        a === 'K' ? key : a === 'C' ? `${prefix}:live` : a === 'C*' ? `${prefix}:live*` : a,
      )
      let answer: unknown
      try {
        answer = await redis.call('ACL', 'DRYRUN', user, name, ...filled)
      } catch (error) {
        const message = (error as Error).message
        if (/NOPERM|unknown subcommand|unknown command/i.test(message) && denied.length === 0)
          return {
            name: 'permissions',
            status: 'skip',
            detail: `cannot check (ACL DRYRUN: ${message.split('\n')[0]})`,
          }
        answer = message
      }
      if (answer !== 'OK') denied.push(`${role}: ${name.toUpperCase()}`)
    }
  }
  if (denied.length === 0)
    return {name: 'permissions', status: 'ok', detail: `user ${user} may run every command raptor uses`}
  return {
    name: 'permissions',
    status: 'fail',
    detail: `user ${user} may not run ${denied.join(', ')}`,
    fix: `ACL SETUSER ${user} ~${prefix}:* &${prefix}:* +<command> for each (README: ACL users)`,
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
    status: 'fail',
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
