import {execFile} from 'node:child_process'
import {existsSync, mkdirSync, renameSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

import {inject} from 'vitest'

import {waitFor} from './index.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

let packed: Promise<string> | undefined

/**
 * The raptorbus package as `npm pack` makes it from the built tree (`npm test` builds first), made
 * once per test run and shared by every test file: the first caller packs under a lock in the run's
 * pack directory (from the global setup), the others wait for the tarball.
 * @returns the path of the tarball
 */
export function packRaptorbus(): Promise<string> {
  packed ??= (async () => {
    const dir = inject('packDir')
    const tarball = join(dir, 'raptorbus.tgz')
    if (existsSync(tarball)) return tarball
    try {
      mkdirSync(join(dir, 'lock'))
    } catch {
      // Another test file is packing: wait for its tarball.
      return waitFor(() => existsSync(tarball) && tarball, 120_000, 'the packed raptorbus tarball')
    }
    const staging = join(dir, 'staging')
    mkdirSync(staging)
    const {stdout} = await promisify(execFile)(
      'npm',
      ['pack', '--ignore-scripts', '--json', '--pack-destination', staging],
      {cwd: ROOT},
    )
    const [{filename}] = JSON.parse(stdout) as {filename: string}[]
    renameSync(join(staging, filename), tarball)
    return tarball
  })()
  return packed
}
