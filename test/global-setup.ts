import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import type {TestProject} from 'vitest/node'

import {RedisCluster, RedisServer, assertRedisInstalled} from './helpers/redis-server.js'

let server: RedisServer | undefined
let cluster: RedisCluster | undefined
let packDir: string | undefined

/**
 * Starts the shared redis-server and the shared 3-master Redis Cluster for the test run (side by
 * side: the cluster takes about a second to form); tests isolate themselves by prefix.
 */
export async function setup(project: TestProject): Promise<void> {
  assertRedisInstalled()
  const started = await Promise.allSettled([RedisServer.start(), RedisCluster.start(3)])
  if (started[0].status === 'fulfilled') server = started[0].value
  if (started[1].status === 'fulfilled') cluster = started[1].value
  for (const s of started) if (s.status === 'rejected') throw s.reason
  project.provide('redisUrl', server!.url)
  project.provide('clusterUrl', cluster!.url)
  project.provide('clusterSeeds', cluster!.seeds)
  // Where test/helpers/pack.ts packs raptorbus, once per run.
  packDir = mkdtempSync(join(tmpdir(), 'raptorbus-pack-'))
  project.provide('packDir', packDir)
}

export async function teardown(): Promise<void> {
  await Promise.all([server?.stop(), cluster?.stop()])
  if (packDir) rmSync(packDir, {recursive: true, force: true})
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string
    /** One node of the test Redis Cluster (3 masters). */
    clusterUrl: string
    /** Every node of the test Redis Cluster, comma-separated. */
    clusterSeeds: string
    packDir: string
  }
}
