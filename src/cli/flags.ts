import {Flags} from '@oclif/core'

import {parseDuration} from '../bus/durations.js'

/** A duration flag (`500ms`, `30s`, `10m`, `1h`, `7d`, or a number of ms), parsed to milliseconds. */
export const durationFlag = Flags.custom<number>({
  helpValue: 'DUR',
  parse: async (input, _context, options) => parseDuration(input, `--${options.name}`),
})

/**
 * TLS flags of every command that connects (SPEC §7), each with its environment variable.
 * Precedence per setting: flag > env > context > config file (`tls` in raptor.config.json).
 */
export const tlsFlags = {
  'tls-ca': Flags.string({
    summary: 'CA certificate file (PEM) to trust for rediss:// (instead of the system CAs).',
    env: 'RAPTOR_TLS_CA',
    helpValue: 'FILE',
    helpGroup: 'GLOBAL',
  }),
  'tls-cert': Flags.string({
    summary: 'Client certificate file (PEM), for a server that requires one (mutual TLS).',
    env: 'RAPTOR_TLS_CERT',
    helpValue: 'FILE',
    helpGroup: 'GLOBAL',
  }),
  'tls-key': Flags.string({
    summary: 'Key file (PEM) of --tls-cert.',
    env: 'RAPTOR_TLS_KEY',
    helpValue: 'FILE',
    helpGroup: 'GLOBAL',
  }),
  'tls-servername': Flags.string({
    summary: "Name to check the server's certificate against (SNI), when it is not the URL's host.",
    env: 'RAPTOR_TLS_SERVERNAME',
    helpValue: 'NAME',
    helpGroup: 'GLOBAL',
  }),
}
