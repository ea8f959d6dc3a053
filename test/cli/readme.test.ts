import {execFile} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

import {format, resolveConfig} from 'prettier'
import {describe, expect, it} from 'vitest'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** The generated command reference between the markers. */
const reference = (text: string) =>
  text.slice(text.lastIndexOf('<!-- commands -->'), text.lastIndexOf('<!-- commandsstop -->'))

describe('README', () => {
  it('has the command reference oclif readme generates from the built commands (run npm run readme)', async () => {
    const {stdout} = await promisify(execFile)(
      process.execPath,
      ['node_modules/oclif/bin/run.js', 'readme', '--no-aliases', '--dry-run'],
      {cwd: ROOT, maxBuffer: 16 * 1024 * 1024, env: {...process.env, OCLIF_SKIP_UPDATE_CHECK: '1'}},
    )
    const path = `${ROOT}README.md`
    // --dry-run prints a "replacing <!-- commands -->" line, then the README.
    const readme = stdout.slice(stdout.indexOf('\n') + 1)
    const generated = reference(await format(readme, {...(await resolveConfig(path)), filepath: path}))
    expect(generated).toContain('## `raptor publish`')
    expect(reference(readFileSync(path, 'utf8'))).toBe(generated)
  }, 60_000)
})
