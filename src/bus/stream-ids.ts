/** Helpers for Redis stream entry ids (`<ms>-<seq>`, Redis server time). */

/** Compares two stream ids: negative when a < b, 0 when equal, positive when a > b. */
export function compareIds(a: string, b: string): number {
  const [am, as = '0'] = a.split('-')
  const [bm, bs = '0'] = b.split('-')
  const dm = Number(am) - Number(bm)
  return dm === 0 ? Number(as) - Number(bs) : dm
}

/** The server time (ms since the epoch) at which an entry was added. */
export function idTime(id: string): number {
  return Number(id.split('-', 1)[0])
}

/** The smallest id at or after a time, for XRANGE starts. */
export function idAt(ms: number): string {
  return `${Math.max(0, Math.floor(ms))}-0`
}
