/**
 * The one writer of stdout for every command that prints much or for long (tail, replay, dlq list,
 * get, publish ids, agent NDJSON logs).
 *
 * - Back-pressure: small writes are coalesced into chunks; when more than `limit` bytes wait for
 *   the reader, `write` returns a promise that resolves on `'drain'`, so a producer that awaits it
 *   runs at the reader's pace and memory stays bounded. `offer` is the non-waiting form for live
 *   data: it refuses (and the caller drops and counts) instead of queueing.
 * - A reader that goes away (`| head -1`, EPIPE) ends the writer at once: every waiting write
 *   resolves, later writes are discarded, and `closed` is set so that the command stops and exits 0.
 */
export class OutputWriter {
  private chunks: string[] = []
  private chunked = 0
  private scheduled = false
  private waiters: (() => void)[] = []
  private closeListeners: (() => void)[] = []
  private isClosed = false
  /** A write error other than a closed reader (disk full…), to be reported by the command. */
  error?: NodeJS.ErrnoException

  /**
   * @param out the stream written to
   * @param limit bytes that may wait for the reader before `write` waits and `offer` refuses
   */
  constructor(
    private readonly out: NodeJS.WriteStream | NodeJS.WritableStream = process.stdout,
    readonly limit = 1024 * 1024,
  ) {
    out.on('error', (error: NodeJS.ErrnoException) => {
      if (!/EPIPE|ERR_STREAM_DESTROYED|ECONNRESET|ERR_STREAM_WRITE_AFTER_END/.test(error.code ?? ''))
        this.error ??= error
      this.close()
    })
    out.on('close', () => this.close())
    out.on('drain', () => this.wake())
  }

  /** True once the reader went away (or writing failed): nothing more will be written. */
  get closed(): boolean {
    return this.isClosed
  }

  /** Calls `listener` once the reader goes away (at once if it already has). */
  onClose(listener: () => void): void {
    if (this.isClosed) listener()
    else this.closeListeners.push(listener)
  }

  /** Bytes handed to the writer that the reader has not taken yet. */
  get waiting(): number {
    return this.chunked + ((this.out as NodeJS.WriteStream).writableLength ?? 0)
  }

  /**
   * Writes text. Returns nothing while the reader keeps up; past `limit` waiting bytes, a promise
   * that resolves when the reader has caught up (or gone away). Await it to honour back-pressure.
   */
  write(text: string): Promise<void> | undefined {
    if (this.isClosed) return undefined
    this.chunks.push(text)
    this.chunked += text.length
    if (this.chunked >= 64 * 1024) this.flush()
    else this.schedule()
    if (this.waiting <= this.limit) return undefined
    // Hand everything to the stream: past its high-water mark it emits 'drain' once it has caught up.
    this.flush()
    if (this.waiting <= this.limit) return undefined
    return new Promise<void>((resolve) => this.waiters.push(resolve))
  }

  /** Writes text unless more than `limit` bytes already wait; false means not written (drop it). */
  offer(text: string): boolean {
    if (this.isClosed) return false
    if (this.waiting > this.limit) return false
    void this.write(text)
    return true
  }

  /** Resolves once everything written has been handed to the reader, or the reader is gone. */
  async end(): Promise<void> {
    this.flush()
    if (this.isClosed || this.waiting === 0) return
    // The callback of a write runs once every earlier write has been handed over.
    await new Promise<void>((resolve) => {
      this.onClose(resolve)
      this.out.write('', () => resolve())
    })
  }

  private schedule(): void {
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      this.flush()
    })
  }

  /** Hands what is coalesced to the stream now (before something else writes to it directly). */
  flush(): void {
    if (this.chunks.length === 0 || this.isClosed) return
    const chunk = this.chunks.length === 1 ? this.chunks[0] : this.chunks.join('')
    this.chunks = []
    this.chunked = 0
    this.out.write(chunk)
  }

  private wake(): void {
    if (!this.isClosed && this.waiting > this.limit) return
    const waiters = this.waiters
    this.waiters = []
    for (const resolve of waiters) resolve()
  }

  private close(): void {
    if (this.isClosed) return
    this.isClosed = true
    this.chunks = []
    this.chunked = 0
    this.wake()
    const listeners = this.closeListeners
    this.closeListeners = []
    for (const listener of listeners) listener()
  }
}

let stdout: OutputWriter | undefined

/** The process's stdout writer (one for every command and the agent log). */
export function stdoutWriter(): OutputWriter {
  stdout ??= new OutputWriter(process.stdout)
  return stdout
}

let stderr: OutputWriter | undefined

/** The process's stderr writer (agent logs on a terminal or into a pipe). */
export function stderrWriter(): OutputWriter {
  stderr ??= new OutputWriter(process.stderr)
  return stderr
}
