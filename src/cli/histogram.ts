/**
 * A small log-linear latency histogram (in the manner of HdrHistogram): exact below 2048 µs, then
 * 1024 sub-buckets per power of two (relative error under 0.1 %), in constant memory however long a
 * benchmark runs.
 */
const LINEAR = 2048
const SUB_BITS = 10
const SUB = 1 << SUB_BITS
const MAX_EXP = 42

/** Latency percentiles in milliseconds. */
export interface LatencySummary {
  count: number
  min: number
  mean: number
  p50: number
  p90: number
  p99: number
  p999: number
  max: number
}

export class Histogram {
  private readonly counts = new Float64Array(LINEAR + (MAX_EXP - 11 + 1) * SUB)
  private total = 0
  private sum = 0
  private lo = Infinity
  private hi = 0

  /** Records one value in microseconds (negative values count as 0). */
  record(micros: number): void {
    const v = micros > 0 ? Math.round(micros) : 0
    this.counts[Histogram.index(v)]++
    this.total++
    this.sum += v
    if (v < this.lo) this.lo = v
    if (v > this.hi) this.hi = v
  }

  /** Adds every value of another histogram. */
  merge(other: Histogram): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i] += other.counts[i]
    this.total += other.total
    this.sum += other.sum
    this.lo = Math.min(this.lo, other.lo)
    this.hi = Math.max(this.hi, other.hi)
  }

  get count(): number {
    return this.total
  }

  private static index(v: number): number {
    if (v < LINEAR) return v
    const exp = Math.min(Math.floor(Math.log2(v)), MAX_EXP)
    const sub = Math.min(Math.floor(v / 2 ** (exp - SUB_BITS)) - SUB, SUB - 1)
    return LINEAR + (exp - 11) * SUB + sub
  }

  private static value(index: number): number {
    if (index < LINEAR) return index
    const exp = Math.floor((index - LINEAR) / SUB) + 11
    const sub = (index - LINEAR) % SUB
    return (SUB + sub + 0.5) * 2 ** (exp - SUB_BITS)
  }

  /** The value (µs) at or below which a fraction `q` (0–1) of the recorded values lie. */
  percentile(q: number): number {
    if (this.total === 0) return 0
    const rank = Math.max(1, Math.ceil(q * this.total))
    let seen = 0
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]
      if (seen >= rank) return Math.min(Math.max(Histogram.value(i), this.lo), this.hi)
    }
    return this.hi
  }

  /** Percentiles in milliseconds, rounded to µs. */
  summary(): LatencySummary {
    const ms = (micros: number) => Math.round(micros) / 1000
    return {
      count: this.total,
      min: this.total ? ms(this.lo) : 0,
      mean: this.total ? ms(this.sum / this.total) : 0,
      p50: ms(this.percentile(0.5)),
      p90: ms(this.percentile(0.9)),
      p99: ms(this.percentile(0.99)),
      p999: ms(this.percentile(0.999)),
      max: ms(this.hi),
    }
  }
}

/**
 * Microseconds on the monotonic clock. On one machine it is the same clock in every process, so a
 * timestamp sent in a payload can be compared with the receiver's clock.
 */
export function nowMicros(): number {
  return Number(process.hrtime.bigint() / 1000n)
}
