import {execFileSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {RedisServer, freePort} from './redis-server.js'

/** Certificates made with the openssl command for one test file: a CA, a server and a client. */
export interface TestCerts {
  dir: string
  /** The CA that signed the server and client certificates. */
  ca: string
  /** Server certificate (SAN 127.0.0.1, localhost) and key. */
  serverCert: string
  serverKey: string
  /** Client certificate (for mutual TLS) and key. */
  clientCert: string
  clientKey: string
  /** Another CA, which the servers do not trust: trusting it is trusting the wrong CA. */
  otherCa: string
  /** A client certificate and key signed by the other CA (refused by a server requiring client certificates). */
  strangerCert: string
  strangerKey: string
  remove(): void
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, {cwd, stdio: ['ignore', 'ignore', 'pipe']})
}

/** A CA key and self-signed certificate. */
function makeCa(dir: string, name: string): void {
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=raptor test ${name}`,
    ].concat(['-keyout', `${name}.key`, '-out', `${name}.pem`]),
    dir,
  )
}

/** A key and a certificate signed by the CA `ca`, with these extensions. */
function makeLeaf(dir: string, ca: string, name: string, subject: string, extensions: string): void {
  writeFileSync(join(dir, `${name}.ext`), extensions)
  openssl(
    [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      subject,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
    ],
    dir,
  )
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.pem`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
    ].concat(['-days', '2', '-out', `${name}.pem`, '-extfile', `${name}.ext`]),
    dir,
  )
}

/** Makes a CA, a server certificate for 127.0.0.1/localhost, a client certificate and a stranger CA. */
export function makeTestCerts(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), 'raptor-tls-'))
  makeCa(dir, 'ca')
  makeCa(dir, 'other-ca')
  makeLeaf(
    dir,
    'ca',
    'server',
    '/CN=localhost',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  )
  makeLeaf(dir, 'ca', 'client', '/CN=raptor-client', 'extendedKeyUsage=clientAuth\n')
  makeLeaf(dir, 'other-ca', 'stranger', '/CN=stranger', 'extendedKeyUsage=clientAuth\n')
  return {
    dir,
    ca: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
    otherCa: join(dir, 'other-ca.pem'),
    strangerCert: join(dir, 'stranger.pem'),
    strangerKey: join(dir, 'stranger.key'),
    remove: () => rmSync(dir, {recursive: true, force: true}),
  }
}

/**
 * A redis-server that speaks TLS only (`--port 0`), with the test certificates; `mutual` makes it
 * require a client certificate signed by the CA.
 */
export async function startTlsServer(certs: TestCerts, mutual: boolean): Promise<RedisServer> {
  const port = await freePort()
  return RedisServer.start(
    port,
    ['--port', '0', '--tls-port', String(port)]
      .concat(['--tls-cert-file', certs.serverCert, '--tls-key-file', certs.serverKey])
      .concat(['--tls-ca-cert-file', certs.ca, '--tls-auth-clients', mutual ? 'yes' : 'no']),
    ['--tls', '--cacert', certs.ca, '--cert', certs.clientCert, '--key', certs.clientKey],
  )
}
