import {Counter, Histogram, Registry} from 'prom-client'
import {describe, expect, it} from 'vitest'

import {parseExposition, sample} from './prometheus.js'

describe('the exposition parser of the tests', () => {
  it('reads what prom-client writes, labelled histograms included', async () => {
    const registry = new Registry()
    new Counter({name: 'c_total', help: 'c', labelNames: ['a'], registers: [registry]}).inc({a: 'x"y\\n'}, 2)
    const h = new Histogram({
      name: 'h_seconds',
      help: 'h',
      labelNames: ['k'],
      buckets: [1],
      registers: [registry],
    })
    h.observe({k: 'v'}, 0.5)
    const m = parseExposition(await registry.metrics())
    expect(sample(m, 'c_total', {a: 'x"y\\n'})).toBe(2)
    expect(sample(m, 'h_seconds_count', {k: 'v'})).toBe(1)
    expect(sample(m, 'h_seconds_bucket', {k: 'v', le: '+Inf'})).toBe(1)
    expect(m.families.get('h_seconds')?.type).toBe('HISTOGRAM')
  })

  const bad: [string, string][] = [
    ['a line that is not a sample', '# HELP a a\n# TYPE a gauge\na b c\n'],
    ['a value that is not a number', '# HELP a a\n# TYPE a gauge\na{x="1"} many\n'],
    ['an unterminated label value', '# HELP a a\n# TYPE a gauge\na{x="1} 1\n'],
    ['a series twice', '# HELP a a\n# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n'],
    ['a sample with no TYPE', 'a 1\n'],
    ['a family with no HELP', '# TYPE a gauge\na 1\n'],
    ['two TYPE lines', '# HELP a a\n# TYPE a gauge\n# TYPE a gauge\na 1\n'],
    ['a metric name starting with a digit', '# HELP 9a a\n# TYPE 9a gauge\n9a 1\n'],
    ['a sample of another family', '# HELP a a\n# TYPE a gauge\nb 1\n'],
    ['no newline at the end', '# HELP a a\n# TYPE a gauge\na 1'],
  ]
  for (const [what, text] of bad) it(`refuses ${what}`, () => expect(() => parseExposition(text)).toThrow())
})
