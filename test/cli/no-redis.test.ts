import {spawn} from 'node:child_process'
import {fileURLToPath} from 'node:url'

import {describe, expect, it} from 'vitest'

import {pathWithoutRedis} from '../helpers/redis-server.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

describe('npm test without redis-server', () => {
  it('says what is missing and how to install it, instead of failing silently', async () => {
    // The test runner itself, with a PATH that has node but no redis-server.
    const child = spawn(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', 'test/bus/dlq.test.ts'], {
      cwd: ROOT,
      env: {...process.env, PATH: pathWithoutRedis(), CI: '1', NO_COLOR: '1'},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
    expect(code).not.toBe(0)
    expect(output).toContain(
      'redis-server and redis-cli not found on the PATH: the tests start their own Redis servers. Install Redis (Debian/Ubuntu: apt-get install redis-server redis-tools',
    )
  })
})
