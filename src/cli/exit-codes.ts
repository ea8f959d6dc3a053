import {RaptorError} from '../bus/errors.js'

/** The exit codes of every raptor command (SPEC §4). */
export const ExitCode = {
  /** Success. */
  OK: 0,
  /** The operation failed: not found, unhealthy, handler failed. */
  FAILED: 1,
  /** Usage or invalid input; nothing was sent or changed. */
  USAGE: 2,
  /** Partial success. */
  PARTIAL: 3,
  /** Redis unreachable. */
  UNAVAILABLE: 69,
  /** Interrupted (SIGINT). */
  INTERRUPTED: 130,
} as const

const BY_CODE: Record<string, number> = {
  INVALID_INPUT: ExitCode.USAGE,
  SCHEMA_VIOLATION: ExitCode.USAGE,
  PAYLOAD_TOO_LARGE: ExitCode.USAGE,
  ROUTING_ERROR: ExitCode.USAGE,
  CONFIG_ERROR: ExitCode.USAGE,
  PLUGIN_ERROR: ExitCode.USAGE,
  CONNECTION_ERROR: ExitCode.UNAVAILABLE,
  NOT_FOUND: ExitCode.FAILED,
  TIMEOUT: ExitCode.FAILED,
  PARTIAL: ExitCode.PARTIAL,
  CLOSED: ExitCode.FAILED,
  MALFORMED_ENTRY: ExitCode.FAILED,
  PERMISSION_DENIED: ExitCode.FAILED,
}

/** Errors of ioredis that mean the connection to Redis was lost mid-command, or Redis stopped answering. */
const LOST_CONNECTION =
  /Connection is closed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|MaxRetriesPerRequest|Stream isn't writeable|Command timed out/i

/** Maps any error to its exit code: typed bus errors by code, oclif usage errors as 2, lost Redis as 69. */
export function exitCodeFor(error: unknown): number {
  if (error instanceof RaptorError) return BY_CODE[error.code] ?? ExitCode.FAILED
  const e = error as {oclif?: {exit?: number}; code?: string; message?: string; name?: string}
  if (typeof e?.oclif?.exit === 'number') return e.oclif.exit
  if (
    e?.name === 'MaxRetriesPerRequestError' ||
    LOST_CONNECTION.test(e?.message ?? '') ||
    LOST_CONNECTION.test(e?.code ?? '')
  ) {
    return ExitCode.UNAVAILABLE
  }
  return ExitCode.FAILED
}
