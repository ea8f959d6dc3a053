import type {RaptorBus} from '../bus/bus.js'
import {assertChannelName, channelMatcher, isPattern} from '../bus/channels.js'
import {RoutingError} from '../bus/errors.js'

/** Every channel name the bus knows: the topology's and every channel published to under the prefix. */
export async function knownChannels(bus: RaptorBus): Promise<string[]> {
  const registry = await bus.redis.smembers(bus.keys.channelRegistry())
  return [...new Set([...bus.topology.names(), ...registry])]
}

/**
 * For commands that read one channel (`metrics --channel`): a name outside the topology that was
 * never published to is a typo, refused with exit 2, the nearest channel when one is close, and how
 * to add it.
 */
export async function assertKnownChannel(bus: RaptorBus, channel: string): Promise<void> {
  assertChannelName(channel)
  if (bus.topology.resolve(channel) || channel.startsWith('sys.dlq.')) return
  const known = await knownChannels(bus)
  if (known.includes(channel)) return
  throw new RoutingError(channel, bus.topology.nearest(channel, known), false)
}

/**
 * The patterns that match no channel the bus knows (nor a channel pattern of the config), each with
 * the nearest channel when one is close: `tail 'sys.alert.warnin'` would otherwise listen silently.
 */
export async function unmatchedPatterns(
  bus: RaptorBus,
  patterns: readonly string[],
): Promise<{pattern: string; suggestion?: string}[]> {
  const known = await knownChannels(bus)
  const configPatterns = bus.topology
    .list()
    .filter((c) => c.pattern)
    .map((c) => c.name)
  return patterns
    .filter((p) => {
      if (configPatterns.includes(p)) return false
      if (!isPattern(p) && bus.topology.resolve(p)) return false
      const match = channelMatcher(p)
      return !known.some((c) => match(c))
    })
    .map((pattern) => ({
      pattern,
      suggestion: isPattern(pattern) ? undefined : bus.topology.nearest(pattern, known),
    }))
}
