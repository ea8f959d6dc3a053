import {execFile} from 'node:child_process'
import {createHash} from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, relative} from 'node:path'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
/** What goes into the tarball (package.json `files`, plus what npm always adds). */
const PACKED = ['package.json', 'README.md', 'oclif.manifest.json', 'bin', 'dist']

/** A digest of everything the tarball is made of, so that a changed build gets a new tarball. */
function digest(): string {
  const hash = createHash('sha256')
  const add = (path: string) => {
    const full = join(ROOT, path)
    if (!existsSync(full)) return
    if (statSync(full).isDirectory()) {
      for (const name of readdirSync(full).sort()) add(join(path, name))
      return
    }
    hash.update(relative(ROOT, full)).update('\0').update(readFileSync(full)).update('\0')
  }
  for (const path of PACKED) add(path)
  return hash.digest('hex').slice(0, 16)
}

let packed: Promise<string> | undefined

/**
 * `npm pack` of the built package (run `npm run build` first; `npm test` does), made once per build:
 * test files running in parallel share one tarball, keyed by a digest of what goes into it. Lifecycle
 * scripts are not run, so packing never rebuilds `dist` under tests that are using it.
 * @returns the tarball's path
 */
export function packRaptorbus(): Promise<string> {
  packed ??= (async () => {
    const dir = join(tmpdir(), `raptorbus-pack-${digest()}`)
    const tarball = join(dir, 'raptorbus.tgz')
    if (existsSync(tarball)) return tarball
    mkdirSync(dir, {recursive: true})
    const lock = join(dir, 'lock')
    // A lock left by a run that died while packing is taken over.
    if (existsSync(lock) && Date.now() - statSync(lock).mtimeMs > 120_000) rmSync(lock, {recursive: true})
    try {
      mkdirSync(lock)
    } catch {
      // Another test file is packing this build: wait for its tarball.
      const deadline = Date.now() + 120_000
      while (!existsSync(tarball)) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${tarball}`)
        await new Promise((r) => setTimeout(r, 100))
      }
      return tarball
    }
    const out = mkdtempSync(join(dir, 'out-'))
    await promisify(execFile)('npm', ['pack', '--ignore-scripts', '--pack-destination', out], {cwd: ROOT})
    const [file] = readdirSync(out).filter((f) => f.endsWith('.tgz'))
    renameSync(join(out, file), tarball)
    return tarball
  })()
  return packed
}
