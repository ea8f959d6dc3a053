/**
 * Timers for any delay. A Node timer holds at most 2^31-1 ms (~24.8 days): a longer delay fires at
 * once (with a TimeoutOverflowWarning), so `--timeout 30d` would end at once and a 30-day heartbeat
 * would beat every millisecond. These chain timers instead, so every delay is honoured.
 */

/** The longest delay one Node timer holds. */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** A pending long timer. */
export interface LongTimer {
  /** Cancels it. */
  clear(): void
}

/**
 * Calls `callback` once after `ms` milliseconds, however long that is.
 * @param unref when true, the timer does not keep the process alive
 */
export function setLongTimeout(callback: () => void, ms: number, unref = false): LongTimer {
  let timer: NodeJS.Timeout
  const arm = (left: number) => {
    timer = setTimeout(
      () => (left > MAX_TIMER_MS ? arm(left - MAX_TIMER_MS) : callback()),
      Math.min(Math.max(0, left), MAX_TIMER_MS),
    )
    if (unref) timer.unref()
  }
  arm(ms)
  return {clear: () => clearTimeout(timer)}
}

/** Calls `callback` every `ms` milliseconds, however long that is. */
export function setLongInterval(callback: () => void, ms: number, unref = false): LongTimer {
  let current: LongTimer
  const next = () => {
    current = setLongTimeout(
      () => {
        next()
        callback()
      },
      ms,
      unref,
    )
  }
  next()
  return {clear: () => current.clear()}
}

/** Resolves after `ms` milliseconds (however long), or at once when `signal` aborts. */
export function sleepLong(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const timer = setLongTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      timer.clear()
      resolve()
    }
    signal?.addEventListener('abort', onAbort, {once: true})
  })
}
