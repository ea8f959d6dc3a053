import type {MalformedEntryError} from '../bus/errors.js'

/**
 * Counts the entries a reader skipped because they are not valid events (a foreign `XADD`, a
 * hostile entry), so that a command can print the rest and then say what it left out.
 */
export function skippedEntries() {
  let count = 0
  let first: MalformedEntryError | undefined
  return {
    add: (error: MalformedEntryError) => {
      count++
      first ??= error
    },
    get count() {
      return count
    },
    /** One stderr line when anything was skipped: how many, and what was wrong with the first. */
    report(note: (line: string) => void) {
      if (!first) return
      note(`skipped ${count} malformed entr${count === 1 ? 'y' : 'ies'} (first: ${first.message})`)
    },
  }
}
