/**
 * The isolation gate of a process: handler runs share it; a run of an event suspected of crashing its
 * process (one taken over from a consumer that died or stalled holding it) holds it alone.
 *
 * Why the whole process: a handler that kills its process (`process.exit`, an uncaught exception, an
 * out-of-memory abort) takes every event running in it down, whatever handler runs them. If a suspect
 * ran beside other events, a crash would be charged to all of them and innocent events would use up
 * their retries in step with the poison one. Run alone, a crash is the suspect's own: only a poison
 * event exhausts its retries. The price is a pause of the process's other work while a suspect runs
 * (it waits for the runs under way to finish, then runs alone) — paid only after a crash or a stall.
 */
export class IsolationGate {
  /** Runs under way that share the gate. */
  private shared = 0
  private exclusive = false
  /** Suspects waiting to run alone, in order. */
  private readonly alone: (() => void)[] = []
  /** Shared runs waiting for the suspects to finish. */
  private readonly together: (() => void)[] = []
  private readonly closeListeners = new Set<() => void>()

  /** True while a suspect runs or waits: no new work should be taken. */
  get closed(): boolean {
    return this.exclusive || this.alone.length > 0
  }

  /** Takes a shared place at once when the gate is open; false when it is closed. */
  tryEnter(): boolean {
    if (this.closed) return false
    this.shared++
    return true
  }

  /** Waits for a shared place (resolves false when `signal` aborts first). */
  enter(signal?: AbortSignal): Promise<boolean> {
    if (this.tryEnter()) return Promise.resolve(true)
    return this.wait(this.together, signal, () => this.shared++)
  }

  /** Leaves a shared place. */
  leave(): void {
    this.shared--
    this.next()
  }

  /**
   * Waits until every shared run has ended and no other suspect runs, then holds the gate alone until
   * `release()` (resolves false when `signal` aborts first).
   */
  enterAlone(signal?: AbortSignal): Promise<boolean> {
    const wasClosed = this.closed
    const entered = this.wait(this.alone, signal, () => (this.exclusive = true))
    if (!wasClosed) for (const l of this.closeListeners) l()
    this.next()
    return entered
  }

  /** Releases the gate held alone. */
  release(): void {
    this.exclusive = false
    this.next()
  }

  /** Calls `listener` each time the gate closes (a consumer then stops waiting for new events). */
  onClose(listener: () => void): () => void {
    this.closeListeners.add(listener)
    return () => this.closeListeners.delete(listener)
  }

  /** Resolves when the gate is open again (at once when it is). */
  async opened(signal?: AbortSignal): Promise<void> {
    if (await this.enter(signal)) this.leave()
  }

  private wait(queue: (() => void)[], signal: AbortSignal | undefined, take: () => void): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      if (signal?.aborted) return resolve(false)
      const grant = () => {
        signal?.removeEventListener('abort', onAbort)
        take()
        resolve(true)
      }
      const onAbort = () => {
        const i = queue.indexOf(grant)
        if (i >= 0) queue.splice(i, 1)
        resolve(false)
        this.next()
      }
      signal?.addEventListener('abort', onAbort, {once: true})
      queue.push(grant)
    })
  }

  /** Hands the gate on: to the next suspect once nothing runs, else to every waiting shared run. */
  private next(): void {
    if (this.exclusive) return
    if (this.alone.length > 0) {
      if (this.shared === 0) this.alone.shift()!()
      return
    }
    while (this.together.length > 0) this.together.shift()!()
  }
}

const KEY = Symbol.for('raptorbus.isolationGate')

/** The gate of this process, shared by every consumer in it (even across copies of the library). */
export function processGate(): IsolationGate {
  const holder = globalThis as unknown as Record<symbol, IsolationGate | undefined>
  return (holder[KEY] ??= new IsolationGate())
}
