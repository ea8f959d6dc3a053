import {Flags} from '@oclif/core'

import {parseDuration} from '../bus/durations.js'

/** A duration flag (`500ms`, `30s`, `10m`, `1h`, `7d`, or a number of ms), parsed to milliseconds. */
export const durationFlag = Flags.custom<number>({
  helpValue: 'DUR',
  parse: async (input, _context, options) => parseDuration(input, `--${options.name}`),
})
