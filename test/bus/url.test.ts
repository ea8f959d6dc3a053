import {describe, expect, it} from 'vitest'

import {InvalidInputError} from '../../src/bus/errors.js'
import {hasPassword, parseRedisUrl, redactText, redactUrl, secretsOf} from '../../src/bus/url.js'

describe('parseRedisUrl', () => {
  it('reads host, port, user, password, db, TLS and family', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6380/3')).toMatchObject({
      scheme: 'redis',
      tls: false,
      endpoints: [{host: '127.0.0.1', port: 6380}],
      db: 3,
    })
    expect(parseRedisUrl('rediss://app:p%40ss@cache.example.com')).toMatchObject({
      tls: true,
      endpoints: [{host: 'cache.example.com', port: 6379}],
      username: 'app',
      password: 'p@ss',
      db: 0,
    })
    expect(parseRedisUrl('redis://[::1]:7000/0?family=6')).toMatchObject({
      endpoints: [{host: '::1', port: 7000}],
      family: 6,
    })
    expect(parseRedisUrl('redis://h?password=x%2Fy&db=2')).toMatchObject({password: 'x/y', db: 2})
  })

  it("reads Sentinel URLs: the Sentinels (default port 26379), the master, the Sentinels' own credentials", () => {
    expect(
      parseRedisUrl('redis-sentinel://app:pw@s1,s2:26380/2?master=orders&sentinelPassword=sp%2F1'),
    ).toMatchObject({
      scheme: 'redis-sentinel',
      tls: false,
      endpoints: [
        {host: 's1', port: 26379},
        {host: 's2', port: 26380},
      ],
      username: 'app',
      password: 'pw',
      db: 2,
      sentinel: {master: 'orders', password: 'sp/1'},
    })
    expect(parseRedisUrl('rediss-sentinel://s1/0?master=m')).toMatchObject({
      tls: true,
      sentinel: {master: 'm'},
    })
    expect(() => parseRedisUrl('redis-sentinel://s1:26379/0')).toThrow(
      /needs the master's name: add \?master=NAME/,
    )
    expect(() => parseRedisUrl('redis://h?master=m')).toThrow(/unknown parameter 'master'/)
    const url = 'redis-sentinel://:pw-secret@s1/0?master=m&sentinelPassword=sp-secret'
    expect(redactUrl(url)).toBe('redis-sentinel://:***@s1/0?master=m&sentinelPassword=***')
    expect(secretsOf(url)).toEqual(expect.arrayContaining(['pw-secret', 'sp-secret']))
  })

  it('takes the user information up to the last @, so a password may hold / ? # unencoded', () => {
    const url = parseRedisUrl('redis://:a/b?c#d@host:1/4')
    expect(url).toMatchObject({password: 'a/b?c#d', endpoints: [{host: 'host', port: 1}], db: 4})
    expect(url.redacted).toBe('redis://:***@host:1/4')
  })

  it.each([
    ['http://h', /unsupported scheme 'http:\/\/'/],
    ['notaurl', /it has no scheme/],
    ['h:6379', /it has no scheme/],
    ['redis://h/abc', /database 'abc' is not a number/],
    ['redis://h/-1', /database '-1' is not a number/],
    ['redis://h:0', /port '0' is not a number from 1 to 65535/],
    ['redis://h:99999', /port '99999'/],
    ['redis://h:x', /port 'x'/],
    ['redis://', /no host/],
    ['redis://secret@h', /a user name without a password/],
    ['redis://h/1/2', /only a database number may follow the host/],
    ['redis://h?tls=1', /unknown parameter 'tls'/],
    ['redis://h/1?db=2', /the database is given twice/],
    ['', /it is empty/],
  ])('refuses %s', (url, why) => {
    expect(() => parseRedisUrl(url)).toThrow(InvalidInputError)
    expect(() => parseRedisUrl(url)).toThrow(why)
  })

  it('never puts the password in its errors', () => {
    for (const url of [
      'http://:s3cr/et@h',
      'redis://:s3cr/et@h/abc',
      ':s3cr/et@h',
      'redis://:s3cr/et@h?bad=1',
    ])
      expect(() => parseRedisUrl(url)).toThrow(/^(?!.*s3cr).*$/)
  })
})

describe('redaction', () => {
  it.each([
    ['redis://:pw@h:1/0', 'redis://:***@h:1/0'],
    ['redis://user:pw@h', 'redis://user:***@h'],
    ['redis://:a/b/c@h:1/0', 'redis://:***@h:1/0'],
    ['redis://h:1/0?password=pw&db=1', 'redis://h:1/0?password=***&db=1'],
    [':pw@h:1', ':***@h:1'],
    ['user:pw@h', 'user:***@h'],
    ['rediss://secret@h', 'rediss://***@h'],
    ['redis://h:1/0', 'redis://h:1/0'],
    ['notaurl', 'notaurl'],
  ])('redactUrl(%s) = %s', (url, safe) => {
    expect(redactUrl(url)).toBe(safe)
  })

  it('scrubs known secrets, URL passwords and password= from any text', () => {
    const secrets = secretsOf('redis://:se%2Fcret@h')
    expect(secrets).toEqual(expect.arrayContaining(['se%2Fcret', 'se/cret']))
    expect(redactText('AUTH se/cret failed; url redis://u:other/pw@x; ?password=zz', secrets)).toBe(
      'AUTH *** failed; url redis://u:***@x; ?password=***',
    )
  })

  it('knows when a URL carries a password', () => {
    expect(hasPassword('redis://:pw@h')).toBe(true)
    expect(hasPassword('redis://h?password=pw')).toBe(true)
    expect(hasPassword('redis://user@h')).toBe(true)
    expect(hasPassword('redis://h:1/0')).toBe(false)
    expect(hasPassword('redis://user:@h')).toBe(false)
  })
})
