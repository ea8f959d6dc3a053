import {readFileSync} from 'node:fs'
import {isIP, connect as netConnect} from 'node:net'
import {resolve} from 'node:path'
import {createSecureContext, connect as tlsConnect, type ConnectionOptions as NodeTlsOptions} from 'node:tls'

import {InvalidInputError} from './errors.js'
import {redactText, type RedisUrl} from './url.js'

/**
 * TLS to Redis: the options (CA, client certificate and key, server name), where they come from
 * (flags, environment, context, config file: each names its own files in errors), and what a failed
 * handshake means, said in terms of the option to pass.
 */

/** TLS options for a `rediss://` (or `rediss-sentinel://`) connection: PEM contents, not paths. */
export type TlsOptions = Pick<NodeTlsOptions, 'ca' | 'cert' | 'key' | 'servername'>

/** TLS settings as files (flags, environment, contexts, config file). */
export interface TlsFiles {
  /** CA certificate file (PEM) to trust instead of the system CAs. */
  ca?: string
  /** Client certificate file (PEM), for servers that require one (mutual TLS). */
  cert?: string
  /** Client key file (PEM) of `cert`. */
  key?: string
  /** Name to check the server's certificate against (and send as SNI), when it is not the host. */
  servername?: string
}

/** How each setting is named to the user where it came from, e.g. `--tls-ca` or `tls.ca in raptor.config.json`. */
export type TlsNames = Record<keyof TlsFiles, string>

/** The CLI's names: flag and environment variable. */
export const TLS_FLAG_NAMES: TlsNames = {
  ca: '--tls-ca',
  cert: '--tls-cert',
  key: '--tls-key',
  servername: '--tls-servername',
}

/** The library's names (options of `RaptorBus.connect`). */
export const TLS_OPTION_NAMES: TlsNames = {
  ca: 'tls.ca',
  cert: 'tls.cert',
  key: 'tls.key',
  servername: 'tls.servername',
}

/** The config file's names. */
const TLS_CONFIG_NAMES: TlsNames = {
  ca: 'tls.ca of the config file',
  cert: 'tls.cert of the config file',
  key: 'tls.key of the config file',
  servername: 'tls.servername of the config file',
}

/**
 * The TLS options of a bus: those given (flags, environment, context or library options), and the
 * config file's files for what they leave out. A client certificate and its key are one setting:
 * given either, the config file's pair is not used.
 * @throws InvalidInputError for files that cannot be read or options that cannot make a handshake
 */
export function mergeTls(given: TlsOptions | undefined, files: TlsFiles | undefined): TlsOptions | undefined {
  const own = Object.fromEntries(Object.entries(given ?? {}).filter(([, v]) => v !== undefined)) as TlsOptions
  if (hasTls(own)) checkTlsOptions(own, TLS_OPTION_NAMES)
  if (!files || !hasTls(files)) return hasTls(own) ? own : undefined
  const pair = own.cert === undefined && own.key === undefined
  const fromFile = readTlsFiles(
    {
      ...(own.ca === undefined ? {ca: files.ca} : {}),
      ...(pair ? {cert: files.cert, key: files.key} : {}),
      ...(own.servername === undefined ? {servername: files.servername} : {}),
    },
    TLS_CONFIG_NAMES,
  )
  return {...fromFile, ...own}
}

/** True when any TLS setting is given. */
export function hasTls(tls: TlsFiles | TlsOptions | undefined): boolean {
  return tls !== undefined && Object.values(tls).some((v) => v !== undefined)
}

/**
 * Reads the files of TLS settings into options for the connection, and checks that they make a
 * usable TLS context (PEM that parses, a key that belongs to the certificate).
 * @param names how to name each setting in errors
 * @param base directory relative paths are resolved against @defaultValue the working directory
 * @throws InvalidInputError naming the setting and the file that cannot be read or used
 */
export function readTlsFiles(files: TlsFiles, names: TlsNames = TLS_FLAG_NAMES, base?: string): TlsOptions {
  const read = (which: 'ca' | 'cert' | 'key'): Buffer | undefined => {
    const file = files[which]
    if (file === undefined) return undefined
    const path = base === undefined ? file : resolve(base, file)
    try {
      return readFileSync(path)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message
      throw new InvalidInputError(
        `${names[which]}: cannot read ${path} (${code}): give the path of a PEM file`,
        {
          file: path,
        },
      )
    }
  }
  const options: TlsOptions = {
    ...(files.ca === undefined ? {} : {ca: read('ca')}),
    ...(files.cert === undefined ? {} : {cert: read('cert')}),
    ...(files.key === undefined ? {} : {key: read('key')}),
    ...(files.servername === undefined ? {} : {servername: files.servername}),
  }
  checkTlsOptions(options, names, files)
  return options
}

/**
 * Refuses TLS options that cannot make a handshake, before anything is sent: a certificate without
 * its key (or the reverse), PEM that does not parse, a key that is not the certificate's.
 * @throws InvalidInputError naming the setting
 */
export function checkTlsOptions(
  tls: TlsOptions,
  names: TlsNames = TLS_FLAG_NAMES,
  files: TlsFiles = {},
): void {
  const named = (which: keyof TlsFiles) => (files[which] ? `${names[which]} ${files[which]}` : names[which])
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    const [given, missing] = tls.cert === undefined ? (['key', 'cert'] as const) : (['cert', 'key'] as const)
    throw new InvalidInputError(
      `${names[given]} needs ${names[missing]}: a client certificate and its key go together (mutual TLS)`,
    )
  }
  if (tls.servername !== undefined && (tls.servername === '' || /\s/.test(tls.servername)))
    throw new InvalidInputError(`${names.servername}: '${tls.servername}' is not a host name`)
  for (const which of ['ca', 'cert', 'key'] as const) {
    const value = tls[which]
    if (value === undefined) continue
    const what = which === 'key' ? 'private key' : 'certificate'
    // Node skips a CA that is not PEM without a word: look for the PEM armour first.
    const texts = (Array.isArray(value) ? value : [value]).map((v) =>
      typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('latin1') : '',
    )
    const armour = which === 'key' ? /-----BEGIN [A-Z ]*PRIVATE KEY-----/ : /-----BEGIN CERTIFICATE-----/
    let why = texts.every((t) => armour.test(t))
      ? undefined
      : `no -----BEGIN ${which === 'key' ? 'PRIVATE KEY' : 'CERTIFICATE'}----- line in it`
    if (why === undefined)
      try {
        createSecureContext({[which]: value})
      } catch (error) {
        why = (error as Error).message
      }
    if (why !== undefined)
      throw new InvalidInputError(
        `${named(which)} is not a PEM ${what} (${why}): give the path of a PEM file`,
      )
  }
  if (tls.cert !== undefined && tls.key !== undefined) {
    try {
      createSecureContext({cert: tls.cert, key: tls.key})
    } catch (error) {
      throw new InvalidInputError(
        `${named('key')} is not the key of ${named('cert')} (${(error as Error).message}): give the key the certificate was made for`,
      )
    }
  }
}

/**
 * The ioredis `tls` option for a URL: none for a plain URL, else SNI for a host name (an IP
 * address there is deprecated) and the given options over it.
 * @throws InvalidInputError when TLS options are given for a plain `redis://` URL (never a silent plain connection)
 */
export function tlsFor(url: RedisUrl, tls: TlsOptions | undefined): NodeTlsOptions | undefined {
  if (!url.tls) {
    if (hasTls(tls)) {
      const which = (['ca', 'cert', 'key', 'servername'] as const).find((k) => tls![k] !== undefined)!
      throw new InvalidInputError(
        `TLS ${which === 'servername' ? 'server name' : which} given (${TLS_FLAG_NAMES[which]} / tls.${which}) for ${url.redacted}, which is not TLS: use ${url.scheme}s:// (or leave the TLS options out)`,
      )
    }
    return undefined
  }
  const host = url.endpoints[0].host
  const defined = Object.fromEntries(Object.entries(tls ?? {}).filter(([, v]) => v !== undefined))
  return {...(isIP(host) ? {} : {servername: host}), ...defined}
}

/** Errors of a TLS handshake (as opposed to a refused or unreachable port). */
const TLS_ERROR =
  /SSL|TLS|certificate|CERT_|self.signed|secure TLS connection|wrong version number|handshake/i
const UNTRUSTED =
  /SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|CERT_UNTRUSTED|self.signed|unable to verify/i
const EXPIRED = /CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|expired/i
const ALTNAME = /ERR_TLS_CERT_ALTNAME_INVALID|altnames/i

/** True when something at host:port answers a plain RESP PING (a plain-text Redis). */
function speaksPlainRedis(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({host, port})
    const done = (result: boolean) => {
      socket.destroy()
      resolve(result)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (data) => done(data[0] === 0x2b /* + */ || data[0] === 0x2d /* - */))
  })
}

/** True when host:port completes a TLS handshake (certificate not checked: only the protocol). */
function speaksTls(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host,
      port,
      rejectUnauthorized: false,
      ...(isIP(host) ? {} : {servername: host}),
    })
    const done = (result: boolean) => {
      socket.destroy()
      resolve(result)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once('error', () => done(false))
    socket.once('secureConnect', () => done(true))
  })
}

function describe(error: unknown): string {
  const e = error as NodeJS.ErrnoException
  return redactText(e?.message ?? e?.code ?? String(error))
}

/**
 * Names a TLS failure as such, with the option to pass: an untrusted or expired certificate, a
 * certificate for another name, a server that wants a client certificate, `rediss://` to a plain
 * port and `redis://` to a TLS port. Undefined when the failure is not about TLS.
 * @param tls the TLS options the connection was made with
 */
export async function tlsDiagnosis(
  url: RedisUrl,
  error: unknown,
  tls: TlsOptions | undefined,
  endpoint = url.endpoints[0],
): Promise<string | undefined> {
  const code = (error as NodeJS.ErrnoException)?.code ?? ''
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH/.test(code)) return undefined
  const {host, port} = endpoint
  const text = `${code} ${(error as Error)?.message ?? ''}`
  const failed = `TLS handshake with ${host}:${port} failed`
  if (url.tls) {
    if (ALTNAME.test(text)) {
      const name = tls?.servername ?? host
      const message = (error as Error).message ?? ''
      const at = message.lastIndexOf('altnames: ')
      const holds = at < 0 ? undefined : message.slice(at + 'altnames: '.length)
      return `${failed}: the server's certificate is not for ${name}${holds ? ` (it holds ${holds})` : ''}: pass --tls-servername NAME with a name it holds`
    }
    if (EXPIRED.test(text))
      return `${failed}: the server's certificate has expired or is not valid yet (${describe(error)})`
    if (UNTRUSTED.test(text))
      return `${failed}: the server's certificate is not trusted (${describe(error)}): pass --tls-ca FILE with the CA that signed it${tls?.ca ? ' (the CA given did not)' : ''}`
    if (await speaksPlainRedis(host, port))
      return `${failed}: the server there speaks plain Redis, not TLS; use redis:// instead of rediss://`
    // The server hung up after the handshake: under TLS 1.3 that is how a refused client
    // certificate (or a missing one) shows on the client's side.
    if (/ECONNRESET|EPIPE|certificate required|alert/i.test(text) && (await speaksTls(host, port)))
      return tls?.cert
        ? `${failed}: the server refused the client certificate (${describe(error)}): pass a --tls-cert FILE signed by a CA the server trusts (its tls-ca-cert-file)`
        : `${failed}: the server requires a client certificate (${describe(error)}): pass --tls-cert FILE and --tls-key FILE`
    if (TLS_ERROR.test(text)) return `${failed} (${describe(error)}): check that the port serves TLS`
    return undefined
  }
  if (await speaksTls(host, port))
    return `the server at ${host}:${port} expects TLS: use rediss:// instead of redis://`
  return undefined
}
