import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import type {TestProject} from 'vitest/node'

import {RedisServer, assertRedisInstalled} from './helpers/redis-server.js'

let server: RedisServer | undefined
let packDir: string | undefined

/** Starts the shared redis-server for the test run; tests isolate themselves by prefix. */
export async function setup(project: TestProject): Promise<void> {
  assertRedisInstalled()
  server = await RedisServer.start()
  project.provide('redisUrl', server.url)
  // Where test/helpers/pack.ts packs raptorbus, once per run.
  packDir = mkdtempSync(join(tmpdir(), 'raptorbus-pack-'))
  project.provide('packDir', packDir)
}

export async function teardown(): Promise<void> {
  await server?.stop()
  if (packDir) rmSync(packDir, {recursive: true, force: true})
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string
    packDir: string
  }
}
