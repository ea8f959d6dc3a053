import parsePrometheusTextFormat from 'parse-prometheus-text-format'

/** One metric family as parse-prometheus-text-format (prom2json's model) gives it. */
export interface Family {
  name: string
  help: string
  type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED'
  metrics: {value?: string; labels?: Record<string, string>; buckets?: Record<string, string>}[]
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*'
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*'
const VALUE = '(?:[+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?|NaN|[+-]Inf)'
const LABEL_VALUE = '"(?:[^"\\\\\\n]|\\\\[\\\\"n])*"'
const SAMPLE = new RegExp(
  `^(${NAME})(?:\\{((?:${LABEL}=${LABEL_VALUE})(?:,${LABEL}=${LABEL_VALUE})*,?)?\\})? (${VALUE})(?: -?\\d+)?$`,
)
const HELP = new RegExp(`^# HELP (${NAME})(?: (.*))?$`)
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`)
const SUFFIXES: Record<string, string[]> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
}

/** A parsed exposition: its families (name → type, help, series) and every sample by series. */
export interface Exposition {
  families: Map<string, Family>
  /** `name{label="value",…}` with labels sorted by name → value. */
  samples: Map<string, number>
}

function seriesKey(name: string, labels: Record<string, string>): string {
  const sorted = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b))
  return `${name}{${sorted.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`
}

const LABEL_PAIR = new RegExp(`(${LABEL})=(${LABEL_VALUE})`, 'g')

/**
 * Parses the Prometheus text exposition format (version 0.0.4) with parse-prometheus-text-format
 * (the npm parser, prom2json's model), after checking the text against the format's grammar, which
 * that parser does not enforce (it turns `a b c` into a sample, and drops the labels of labelled
 * histograms): every line a HELP, a TYPE or a well-formed sample of a declared family, one HELP and
 * one TYPE per family before its samples, no series twice. The samples are read in that pass.
 * @throws Error naming the first line that is not valid exposition text
 */
export function parseExposition(text: string): Exposition {
  if (text !== '' && !text.endsWith('\n')) throw new Error('exposition text must end with a newline')
  const types = new Map<string, string>()
  const helps = new Set<string>()
  const samples = new Map<string, number>()
  let current: string | undefined
  text.split('\n').forEach((line, i) => {
    const fail = (why: string) => new Error(`line ${i + 1}: ${why}: ${JSON.stringify(line)}`)
    if (line === '') return
    const help = HELP.exec(line)
    if (help) {
      if (helps.has(help[1])) throw fail('second HELP for the family')
      helps.add(help[1])
      current = help[1]
      return
    }
    const type = TYPE.exec(line)
    if (type) {
      if (types.has(type[1])) throw fail('second TYPE for the family')
      types.set(type[1], type[2])
      current = type[1]
      return
    }
    if (line.startsWith('#')) throw fail('a comment that is neither HELP nor TYPE')
    const sample = SAMPLE.exec(line)
    if (!sample) throw fail('not a sample line')
    const family = current
    const kind = family === undefined ? undefined : types.get(family)
    if (family === undefined || kind === undefined) throw fail('a sample before its TYPE')
    const allowed = (SUFFIXES[kind] ?? ['']).map((s) => family + s)
    if (!allowed.includes(sample[1])) throw fail(`a sample of another family than ${family}`)
    const labels: Record<string, string> = {}
    for (const [, k, v] of (sample[2] ?? '').matchAll(LABEL_PAIR)) {
      if (k in labels) throw fail(`label ${k} given twice`)
      labels[k] = JSON.parse(v) as string
    }
    const key = seriesKey(sample[1], labels)
    if (samples.has(key)) throw fail('a series given twice')
    samples.set(key, Number(sample[3].replace(/Inf$/, 'Infinity')))
  })
  for (const name of types.keys()) if (!helps.has(name)) throw new Error(`family ${name} has no HELP`)
  const families = parsePrometheusTextFormat(text) as Family[]
  return {families: new Map(families.map((f) => [f.name, f])), samples}
}

/** The value of one series (labels matched exactly), or undefined when it is absent. */
export function sample(
  exposition: Exposition,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  return exposition.samples.get(seriesKey(name, labels))
}

/** Every label set a gauge or counter family has (to assert that no series is there that should not be). */
export function labelSets(exposition: Exposition, name: string): Record<string, string>[] {
  return (exposition.families.get(name)?.metrics ?? []).map((m) => m.labels ?? {})
}
