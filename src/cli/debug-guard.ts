import {guardDebugOutput} from '../bus/connection.js'
import {secretsOf} from '../bus/url.js'

/**
 * With DEBUG set, oclif prints the whole argv and ioredis every command it sends (AUTH included):
 * before either runs, register every password found on the command line and in REDIS_URL so that
 * the `debug` output shows `***` instead.
 */
export function guardDebug(argv: readonly string[], env: NodeJS.ProcessEnv): void {
  const secrets = argv.flatMap((arg) =>
    secretsOf(arg.startsWith('--') ? arg.slice(arg.indexOf('=') + 1) : arg),
  )
  guardDebugOutput([...secrets, ...secretsOf(env.REDIS_URL)])
}
