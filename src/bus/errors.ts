/**
 * Typed errors of the raptorbus library. Each has a stable `code`, a message that says what to do,
 * and the context it concerns (channel, id). The CLI maps them to exit codes in one place
 * (`src/cli/exit-codes.ts`); library users can `instanceof` them or switch on `code`.
 */

/** Stable error codes, one per error class. */
export type RaptorErrorCode =
  | 'INVALID_INPUT'
  | 'SCHEMA_VIOLATION'
  | 'PAYLOAD_TOO_LARGE'
  | 'ROUTING_ERROR'
  | 'CONNECTION_ERROR'
  | 'NOT_FOUND'
  | 'TIMEOUT'
  | 'CONFIG_ERROR'
  | 'PLUGIN_ERROR'
  | 'CLOSED'
  | 'PARTIAL'
  | 'MALFORMED_ENTRY'
  | 'PERMISSION_DENIED'

/** Base class of every error raptorbus throws on purpose. */
export class RaptorError extends Error {
  /** Stable machine-readable code. */
  readonly code: RaptorErrorCode
  /** What the error concerns: a channel, an event id, a file. */
  readonly context: Record<string, unknown>

  constructor(
    code: RaptorErrorCode,
    message: string,
    context: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(message, options)
    this.name = new.target.name
    this.code = code
    this.context = context
  }
}

/** Input that cannot be used as given: a malformed channel name, a bad type, a payload that is not an object. */
export class InvalidInputError extends RaptorError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('INVALID_INPUT', message, context)
  }
}

/** One problem found by a schema: where it is and what is wrong. */
export interface SchemaIssue {
  path: string
  message: string
}

/** An envelope or payload that fails its schema. */
export class SchemaViolationError extends RaptorError {
  readonly issues: SchemaIssue[]

  constructor(message: string, issues: SchemaIssue[], context: Record<string, unknown> = {}) {
    super('SCHEMA_VIOLATION', message, {...context, issues})
    this.issues = issues
  }
}

/** A payload larger than `maxPayloadBytes`. */
export class PayloadTooLargeError extends RaptorError {
  constructor(
    readonly bytes: number,
    readonly limit: number,
    context: Record<string, unknown> = {},
  ) {
    super(
      'PAYLOAD_TOO_LARGE',
      `payload is ${bytes} bytes, over the limit of ${limit}: send a reference (a URL or key) instead, or raise maxPayloadBytes in the config`,
      {...context, bytes, limit},
    )
  }
}

/**
 * An event addressed to a channel outside the topology. The event was parked in DLQ `routing_error`
 * (unless `parked` is false); `suggestion` names the nearest valid channel.
 */
export class RoutingError extends RaptorError {
  constructor(
    readonly channel: string,
    readonly suggestion: string | undefined,
    readonly parked: boolean,
  ) {
    const hint = suggestion ? `; did you mean '${suggestion}'?` : ''
    const add = `; to add it, list {"name":"${channel}","retention":"24h"} under "channels" in raptor.config.json (raptor channels lists the topology)`
    super(
      'ROUTING_ERROR',
      `unknown channel '${channel}'${parked ? ' (event parked in DLQ routing_error)' : ''}${hint}${add}`,
      {channel, suggestion, parked},
    )
  }
}

/** Redis cannot be reached (refused, timed out, authentication failed). */
export class ConnectionError extends RaptorError {
  constructor(message: string, context: Record<string, unknown> = {}, options?: ErrorOptions) {
    super('CONNECTION_ERROR', message, context, options)
  }
}

/** The thing asked for does not exist (or has expired with its channel's retention). */
export class NotFoundError extends RaptorError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('NOT_FOUND', message, context)
  }
}

/** An operation did not finish in time (for example `bus.request` got no reply). */
export class TimeoutError extends RaptorError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('TIMEOUT', message, context)
  }
}

/** The config file is missing, unreadable or invalid. */
export class ConfigError extends RaptorError {
  constructor(message: string, context: Record<string, unknown> = {}, options?: ErrorOptions) {
    super('CONFIG_ERROR', message, context, options)
  }
}

/** A handler plugin cannot be loaded or its definition is invalid. */
export class PluginError extends RaptorError {
  constructor(message: string, context: Record<string, unknown> = {}, options?: ErrorOptions) {
    super('PLUGIN_ERROR', message, context, options)
  }
}

/** The bus was used after `close()`. */
export class ClosedError extends RaptorError {
  constructor() {
    super('CLOSED', 'the bus is closed: connect a new one with RaptorBus.connect()')
  }
}

/** Part of a batch was written before a failure; `ids` are the events that were published. */
export class PartialError extends RaptorError {
  constructor(
    message: string,
    readonly ids: string[],
    options?: ErrorOptions,
  ) {
    super('PARTIAL', message, {published: ids.length}, options)
  }
}

/**
 * A stored or received entry that is not a valid event envelope (written by a foreign `XADD`, say):
 * readers skip it and say so; `getEvent` of its id throws this. `issues` says what is wrong.
 */
export class MalformedEntryError extends RaptorError {
  readonly issues: SchemaIssue[]

  constructor(message: string, issues: SchemaIssue[], context: Record<string, unknown> = {}) {
    super('MALFORMED_ENTRY', message, {...context, issues})
    this.issues = issues
  }
}

/**
 * The Redis ACL user may not run a command, or touch the keys or pub/sub channels it names (Redis
 * `NOPERM`): the message names the user and the command (also one run inside a raptor script).
 */
export class PermissionError extends RaptorError {
  constructor(message: string, context: Record<string, unknown> = {}, options?: ErrorOptions) {
    super('PERMISSION_DENIED', message, context, options)
  }
}
