import {describe, expect, it} from 'vitest'

import {compileFilter} from '../../src/gateway/filter.js'

const event = {
  type: 'state_changed',
  source: 'ui-7',
  channel: 'sys.state.update',
  priority: 'high',
  data: {user_id: 'u1', n: 3, tags: ['a', 'b'], nested: {ok: true}, 'user id': 'spaced', zero: 0},
}

describe('filter language (where=)', () => {
  it.each([
    ['data.user_id == "u1"', true],
    ['data.user_id != "u1"', false],
    ["data.user_id == 'u2'", false],
    ['type == "state_changed" && data.n >= 3', true],
    ['data.n > 3 || priority == "high"', true],
    ['!(data.n < 3)', true],
    ['priority in ["high", "critical"]', true],
    ['"b" in data.tags', true],
    ['"c" in data.tags', false],
    ['"state" in type', true],
    ['data.nested.ok == true', true],
    ['data["user id"] == "spaced"', true],
    ['data.tags[1] == "b"', true],
    ['data.missing == null', true],
    ['data.missing.deeper == null', true],
    ['data.n == "3"', false], // no coercion
    ['data.n > "2"', false], // numbers compare with numbers only
    ['data.n >= -1', true],
    ['data.zero', false],
    ['data.tags == ["a", "b"]', true],
    ['data.__proto__ == null', true],
    ['data.constructor == null', true],
    ['data.toString == null', true],
  ])('%s → %s', (text, expected) => {
    expect(compileFilter(text)(event)).toBe(expected)
  })

  it.each([
    ['data.x = 1', /compare with ==/],
    ['process.exit(1)', /function calls are not supported/],
    ['a; b', /one expression only/],
    ['a ? b : c', /ConditionalExpression is not supported/],
    ['data.n + 1 > 2', /operator \+ is not supported/],
    ['data[data.key]', /quoted name or a number/],
    ['', /empty expression/],
    ['x'.repeat(2000), /longer than 1024 characters/],
    ['!'.repeat(40) + 'data.n', /nested deeper than 32/],
  ])('refuses %s', (text, message) => {
    expect(() => compileFilter(text)).toThrow(message)
  })
})
