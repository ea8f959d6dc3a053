/**
 * The JSON documents of the operator commands, built in one place so that `raptor serve` answers with
 * exactly what `raptor <command> --json` prints.
 */
import type {ChannelInfo} from '../bus/bus.js'
import type {DlqEntry, RequeueResult, SkippedEntry} from '../bus/dlq.js'
import {formatDuration} from '../bus/durations.js'

/** One channel as `raptor channels --json` prints it. */
export interface ChannelRow extends ChannelInfo {
  /** Retention in short human form (`1h`, `7d`). */
  retention: string
}

/** `raptor channels --json`. */
export interface ChannelsResult {
  channels: ChannelRow[]
}

/** `raptor dlq list --json`. */
export interface DlqListResult {
  entries: DlqEntry[]
}

/** `raptor dlq requeue --json`. */
export interface DlqRequeueResult extends Omit<RequeueResult, 'skipped'> {
  /** Entries left in the DLQ. */
  skipped: number
  skippedEntries: SkippedEntry[]
}

/** The topology as `raptor channels --json` prints it. */
export function channelsResult(infos: readonly ChannelInfo[]): ChannelsResult {
  return {
    channels: infos.map((c) => ({...c, retention: c.retentionMs > 0 ? formatDuration(c.retentionMs) : '-'})),
  }
}

/** A requeue's outcome as `raptor dlq requeue --json` prints it. */
export function requeueResult(result: RequeueResult): DlqRequeueResult {
  return {
    requeued: result.requeued,
    dryRun: result.dryRun,
    skipped: result.skipped.length,
    skippedEntries: result.skipped,
    targets: result.targets,
  }
}
