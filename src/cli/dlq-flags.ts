import {Flags} from '@oclif/core'

import {DLQ_REASONS, assertChannelPattern, type DlqReason} from '../bus/channels.js'
import type {DlqFilter} from '../bus/dlq.js'

/** The filter flags shared by `dlq list`, `dlq requeue` and `dlq purge`. */
export const dlqFilterFlags = {
  reason: Flags.option({
    options: DLQ_REASONS,
    summary: 'Only this reason (repeatable).',
    multiple: true,
  })(),
  channel: Flags.string({
    char: 'c',
    summary: 'Only entries whose original channel matches this name or glob (repeatable).',
    multiple: true,
  }),
  handler: Flags.string({summary: 'Only entries failed by this handler (repeatable).', multiple: true}),
  limit: Flags.integer({char: 'n', summary: 'At most N entries.', min: 1}),
}

/** Filter flags as parsed. */
export interface DlqFilterFlagValues {
  reason?: DlqReason[]
  channel?: string[]
  handler?: string[]
  limit?: number
  id?: string[]
}

/** The library filter from the parsed flags; an invalid `--channel` glob is refused (exit 2). */
export function dlqFilter(flags: DlqFilterFlagValues): DlqFilter {
  flags.channel?.forEach(assertChannelPattern)
  return {
    reasons: flags.reason,
    channels: flags.channel,
    handlers: flags.handler,
    ids: flags.id,
    limit: flags.limit,
  }
}
