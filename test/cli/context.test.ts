import {mkdtempSync, readFileSync, statSync, chmodSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {describe, expect, it} from 'vitest'

import {randomPrefix, redisUrl, runCli, tempDir} from '../helpers/index.js'

/** A fresh config directory, so that each test has its own contexts file. */
function home(): {env: Record<string, string>; file: string} {
  const dir = mkdtempSync(join(tmpdir(), 'raptor-ctx-'))
  return {env: {XDG_CONFIG_HOME: dir}, file: join(dir, 'raptor', 'contexts.json')}
}

/** A URL of the test Redis with a password in it (the test Redis has none, so ioredis warns but connects). */
const DEAD = 'redis://127.0.0.1:1/0'

describe('raptor context', () => {
  it('add, list, show, use, rm: one 0600 file in the config directory, passwords shown as ***', async () => {
    const {env, file} = home()
    const add = await runCli(
      [
        'context',
        'add',
        'prod',
        '--redis-url',
        'redis://app:s3cret@db.internal:6380/2',
        '--prefix',
        'orders',
      ],
      {env},
    )
    expect(add.code, add.stderr).toBe(0)
    expect(add.stdout).toBe("saved context 'prod' (current): redis://app:***@db.internal:6380/2\n")
    expect(add.stderr).toBe(
      'warning: the password on this command line is visible in ps and your shell history; --password-stdin keeps it off\n',
    )
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(statSync(join(file, '..')).mode & 0o777).toBe(0o700)
    expect(JSON.parse(readFileSync(file, 'utf8')).contexts.prod.redisUrl).toContain('s3cret')

    const second = await runCli(
      ['context', 'add', 'local', '--redis-url', redisUrl(), '--description', 'laptop'],
      {env},
    )
    expect(second.stdout).toBe(`saved context 'local': ${redisUrl()}\n`)
    const again = await runCli(['context', 'add', 'local', '--redis-url', redisUrl()], {env})
    expect(again.code).toBe(2)
    expect(again.stderr).toBe("Error: context 'local' exists: pass --force to replace it\n")

    const list = await runCli(['context', 'list'], {env})
    expect(list.code).toBe(0)
    expect(list.stdout).not.toContain('s3cret')
    expect(list.stdout).toMatch(/^\* +prod +redis:\/\/app:\*\*\*@db\.internal:6380\/2 +orders/m)
    expect(list.stdout).toMatch(/^ +local +redis:\/\/127\.0\.0\.1:\d+\/0 +- +laptop/m)
    const json = JSON.parse((await runCli(['context', 'list', '--json'], {env})).stdout)
    expect(json.current).toBe('prod')
    expect(json.contexts.map((c: {name: string}) => c.name)).toEqual(['prod', 'local'])
    expect(JSON.stringify(json)).not.toContain('s3cret')

    const show = await runCli(['context', 'show'], {env})
    expect(show.stdout).toMatch(
      /^name +prod\nredis url +redis:\/\/app:\*\*\*@db\.internal:6380\/2\nprefix +orders\n/,
    )
    expect(show.stdout).not.toContain('s3cret')
    const showJson = JSON.parse((await runCli(['context', 'show', 'local', '--json'], {env})).stdout)
    expect(showJson).toMatchObject({name: 'local', redisUrl: redisUrl(), description: 'laptop'})

    const use = await runCli(['context', 'use', 'local'], {env})
    expect(use.stdout).toBe('current context: local\n')
    expect(JSON.parse(readFileSync(file, 'utf8')).current).toBe('local')
    expect(statSync(file).mode & 0o777).toBe(0o600)

    const rm = await runCli(['context', 'rm', 'local'], {env})
    expect(rm.stdout).toBe("removed context 'local'\n")
    const after = JSON.parse((await runCli(['context', 'list', '--json'], {env})).stdout)
    expect(after).toMatchObject({current: null, contexts: [{name: 'prod'}]})
    const gone = await runCli(['context', 'use', 'local'], {env})
    expect(gone.code).toBe(2)
    expect(gone.stderr).toMatch(
      /^Error: no context 'local' \(known: prod\): create it with raptor context add local/,
    )
  })

  it('--password-stdin keeps the password off the command line', async () => {
    const {env, file} = home()
    const r = await runCli(
      ['context', 'add', 'p', '--redis-url', 'rediss://app@db.internal:6380/0', '--password-stdin'],
      {env, input: 'p@ss word\n'},
    )
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe("saved context 'p' (current): rediss://app:***@db.internal:6380/0\n")
    const url = new URL(JSON.parse(readFileSync(file, 'utf8')).contexts.p.redisUrl)
    expect(decodeURIComponent(url.password)).toBe('p@ss word')
  })

  it('refuses a contexts file other users can read, and bad names and URLs (exit 2)', async () => {
    const {env, file} = home()
    await runCli(['context', 'add', 'a', '--redis-url', redisUrl()], {env})
    chmodSync(file, 0o644)
    const r = await runCli(['health', '--json'], {env})
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(
      `Error: contexts file ${file} is open to other users (mode 0644): it may hold passwords; run chmod 600 ${file}\n`,
    )
    const name = await runCli(['context', 'add', 'bad name', '--redis-url', redisUrl()], {env: home().env})
    expect(name.code).toBe(2)
    expect(name.stderr).toMatch(/^Error: invalid context name 'bad name'/)
    const scheme = await runCli(['context', 'add', 'x', '--redis-url', 'http://h:1'], {env: home().env})
    expect(scheme.code).toBe(2)
    expect(scheme.stderr).toMatch(
      /^Error: invalid --redis-url 'http:\/\/h:1': unsupported scheme 'http:\/\/'/,
    )
    const plain = await runCli(['context', 'add', 'x', '--redis-url', 'redis://h:1', '--tls-ca', 'a.pem'], {
      env: home().env,
    })
    expect(plain.code).toBe(2)
    expect(plain.stderr).toBe(
      'Error: --tls-ca is for TLS: use a rediss:// URL (or leave the TLS flags out)\n',
    )
    const tls = await runCli(['context', 'add', 'x', '--redis-url', 'rediss://h:1', '--tls-ca', 'nope.pem'], {
      env: home().env,
    })
    expect(tls.code).toBe(2)
    expect(tls.stderr).toMatch(/^Error: --tls-ca: cannot read \/.*\/nope\.pem \(ENOENT\)/)
  })

  it('keeps TLS files as absolute paths, so the context works from any directory', async () => {
    const {env, file} = home()
    const dir = tempDir({'ca.pem': 'not really a certificate\n'})
    const r = await runCli(
      ['context', 'add', 'tls', '--redis-url', 'rediss://db.internal:6380/0', '--tls-ca', 'ca.pem'],
      {env, cwd: dir},
    )
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(readFileSync(file, 'utf8')).contexts.tls.tlsCa).toBe(join(dir, 'ca.pem'))
    const show = await runCli(['context', 'show', 'tls'], {env})
    expect(show.stdout).toContain(`tls ca          ${join(dir, 'ca.pem')}\n`)
  })

  it('precedence: flag > env > context > config file > default', async () => {
    const {env} = home()
    const ctxPrefix = randomPrefix()
    const cfgPrefix = randomPrefix()
    const envPrefix = randomPrefix()
    const flagPrefix = randomPrefix()
    // The config file points at a dead Redis and its own prefix; the context at the live one.
    const dir = tempDir({'raptor.config.json': {redisUrl: DEAD, prefix: cfgPrefix}})
    const prefixOf = async (args: string[], extra: Record<string, string> = {}) => {
      const r = await runCli(['metrics', '--json', ...args], {env: {...env, ...extra}, cwd: dir})
      expect(r.code, r.stderr).toBe(0)
      return JSON.parse(r.stdout).prefix as string
    }
    // No context: the config file's dead URL is used (exit 69), so the config file is read.
    const noCtx = await runCli(['metrics', '--json'], {env, cwd: dir})
    expect(noCtx.code).toBe(69)
    // Default when nothing else says: prefix raptor (with the URL from the env).
    const defaults = await runCli(['metrics', '--json'], {env: {...env, REDIS_URL: redisUrl()}})
    expect(JSON.parse(defaults.stdout).prefix).toBe('raptor')

    await runCli(['context', 'add', 'live', '--redis-url', redisUrl(), '--prefix', ctxPrefix], {env})
    expect(await prefixOf([])).toBe(ctxPrefix) // context > config file
    expect(await prefixOf([], {RAPTOR_PREFIX: envPrefix})).toBe(envPrefix) // env > context
    expect(await prefixOf(['--prefix', flagPrefix], {RAPTOR_PREFIX: envPrefix})).toBe(flagPrefix) // flag > env
    // The URL: env and flag override the context's.
    const envUrl = await runCli(['metrics', '--json'], {env: {...env, REDIS_URL: DEAD}, cwd: dir})
    expect(envUrl.code).toBe(69)
    const flagUrl = await runCli(['metrics', '--json', '--redis-url', redisUrl()], {
      env: {...env, REDIS_URL: DEAD},
      cwd: dir,
    })
    expect(flagUrl.code, flagUrl.stderr).toBe(0)

    // --context and RAPTOR_CONTEXT pick another context than the current one.
    await runCli(['context', 'add', 'dead', '--redis-url', DEAD], {env})
    expect((await runCli(['metrics', '--json', '--context', 'dead'], {env, cwd: dir})).code).toBe(69)
    expect(
      (await runCli(['metrics', '--json'], {env: {...env, RAPTOR_CONTEXT: 'dead'}, cwd: dir})).code,
    ).toBe(69)
    const unknown = await runCli(['metrics', '--context', 'nope'], {env, cwd: dir})
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toMatch(/^Error: no context 'nope' \(known: live, dead\)/)
  })
})
