import cliProgress from 'cli-progress'

/** A progress bar on stderr, shown only on a TTY; a no-op elsewhere. */
export interface Progress {
  update(value: number): void
  stop(): void
}

/** Starts a progress bar on stderr when it is a terminal (and NO_COLOR-agnostic: it has no colour). */
export function progressBar(total: number, label: string, show = Boolean(process.stderr.isTTY)): Progress {
  if (!show || total <= 0) return {update: () => {}, stop: () => {}}
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {value}/{total} | {eta_formatted} left`,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  )
  bar.start(total, 0)
  let last = 0
  return {
    update(value) {
      last = value
      if (value > bar.getTotal()) bar.setTotal(value)
      bar.update(value)
    },
    stop() {
      bar.setTotal(Math.max(last, 1))
      bar.update(last)
      bar.stop()
    },
  }
}

/** An AbortController aborted by the first SIGINT; `dispose` removes the handler. */
export function onInterrupt(): {signal: AbortSignal; dispose(): void} {
  const controller = new AbortController()
  const handler = () => controller.abort()
  process.once('SIGINT', handler)
  return {signal: controller.signal, dispose: () => process.removeListener('SIGINT', handler)}
}
