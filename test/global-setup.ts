import type {TestProject} from 'vitest/node'

import {RedisServer} from './helpers/redis-server.js'

let server: RedisServer | undefined

/** Starts the shared redis-server for the test run; tests isolate themselves by prefix. */
export async function setup(project: TestProject): Promise<void> {
  server = await RedisServer.start()
  project.provide('redisUrl', server.url)
}

export async function teardown(): Promise<void> {
  await server?.stop()
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string
  }
}
