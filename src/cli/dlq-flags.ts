import {Flags} from '@oclif/core'

import {DLQ_REASONS, assertChannelPattern, type DlqReason} from '../bus/channels.js'
import type {Dlq, DlqFilter} from '../bus/dlq.js'
import {InvalidInputError, NotFoundError} from '../bus/errors.js'

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

/**
 * `--id` values (or `dlq show`'s argument) as the library takes them: a short id (a stream entry id
 * alone, as `dlq list` shows on a terminal) becomes the full id of the entry that has it. For a
 * command that changes entries (`unique`), a short id that several entries share is refused (exit
 * 2, naming them) rather than acting on all of them. A short id that no DLQ stream has is kept as it
 * is (an event id of that form). The caller must never pass an empty result on as a filter (an
 * empty `ids` filter means all).
 * @throws InvalidInputError for an ambiguous short id (`unique`)
 */
export async function resolveDlqIds(
  dlq: Pick<Dlq, 'expandIds'>,
  ids: readonly string[],
  unique: boolean,
): Promise<string[]> {
  const expanded = await dlq.expandIds(ids)
  const out: string[] = []
  for (const id of ids) {
    const full = expanded.get(id) ?? []
    if (unique && full.length > 1)
      throw new InvalidInputError(
        `DLQ id '${id}' is ambiguous: ${full.join(' and ')} share it; give the full id`,
        {id},
      )
    out.push(...full)
  }
  return [...new Set(out)]
}

/**
 * How `dlq list` shows each entry's id on a terminal: its stream entry id alone, which `dlq show`,
 * `requeue --id` and `purge --id` accept, unless another listed entry has the same one (then the
 * full id, so that what is shown always names one entry of the list).
 */
export function displayIds(entries: readonly {id: string}[]): Map<string, string> {
  const short = (id: string) => id.slice(id.lastIndexOf('/') + 1)
  const count = new Map<string, number>()
  for (const e of entries) count.set(short(e.id), (count.get(short(e.id)) ?? 0) + 1)
  return new Map(entries.map((e) => [e.id, count.get(short(e.id)) === 1 ? short(e.id) : e.id]))
}

/**
 * The filter of a command that changes entries (`requeue`, `purge`): the flags' filter with `--id`
 * resolved, short ids included (an ambiguous one is exit 2).
 * @throws NotFoundError (exit 1) when `--id` names no entry at all
 */
export async function changeFilter(
  dlq: Pick<Dlq, 'expandIds'>,
  flags: DlqFilterFlagValues,
): Promise<DlqFilter> {
  const filter = dlqFilter(flags)
  if (!flags.id?.length) return filter
  const ids = await resolveDlqIds(dlq, flags.id, true)
  if (ids.length === 0)
    throw new NotFoundError(
      `no dead letter matches --id ${flags.id.join(', ')}: raptor dlq list shows the ids`,
    )
  return {...filter, ids}
}
