/**
 * The filter language of `where=` (SSE) and of WebSocket subscriptions: a small expression over an
 * event's fields, parsed by jsep into a tree and evaluated here node by node. Nothing is ever
 * compiled or `eval`ed; only the node types and operators below exist.
 *
 *   data.user_id == "u1"
 *   type == "research_complete" && data.confidence >= 0.8
 *   priority in ["high", "critical"] || !(source == "raptor-cli")
 *   data["user id"] != null
 *
 * Names are the envelope's attributes (`type`, `source`, `channel`, `priority`, `subject`, an
 * extension…) and `data` for the payload; a name or field that is absent is `null`. `==`/`!=` compare
 * JSON values without coercion (objects and arrays by content); `<`, `<=`, `>`, `>=` compare two numbers
 * or two strings and are false otherwise; `in` tests membership of an array (or of a string in a string).
 */
import jsep from 'jsep'

import {InvalidInputError} from '../bus/errors.js'

/** A compiled filter: true when the event matches. */
export type EventFilter = (event: Readonly<Record<string, unknown>>) => boolean

/** Longest filter text accepted. */
export const MAX_FILTER_LENGTH = 1024
/** Deepest expression tree accepted (bounds the evaluation's recursion). */
const MAX_DEPTH = 32

// jsep's operator table is module-wide; `in` is the one operator added to it.
jsep.addBinaryOp('in', 7)

type Node = jsep.Expression
type Value = unknown

const COMPARE = new Set(['<', '<=', '>', '>='])
const EQUAL = new Set(['==', '===', '!=', '!=='])

function fail(where: string, why: string): never {
  throw new InvalidInputError(`invalid filter '${where}': ${why}`)
}

/** An own property of a plain object or array, else null: prototypes are never reached. */
function field(base: Value, key: Value): Value {
  if (base === null || typeof base !== 'object') return null
  if (Array.isArray(base)) {
    if (typeof key === 'number' && Number.isInteger(key) && key >= 0 && key < base.length) return base[key]
    return null
  }
  if (typeof key !== 'string' && typeof key !== 'number') return null
  const name = String(key)
  return Object.hasOwn(base, name) ? (base as Record<string, Value>)[name] : null
}

function equal(a: Value, b: Value): boolean {
  if (a === b) return true
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  return (
    ka.length === kb.length &&
    ka.every(
      (k) => Object.hasOwn(b, k) && equal((a as Record<string, Value>)[k], (b as Record<string, Value>)[k]),
    )
  )
}

function truthy(value: Value): boolean {
  return value !== null && value !== undefined && value !== false && value !== 0 && value !== ''
}

/** Checks the tree once, so that evaluation meets only nodes it knows. */
function check(node: Node, text: string, depth: number): void {
  if (depth > MAX_DEPTH) fail(text, `nested deeper than ${MAX_DEPTH} levels`)
  switch (node.type) {
    case 'Literal':
    case 'Identifier':
      return
    case 'MemberExpression': {
      const m = node as jsep.MemberExpression
      check(m.object, text, depth + 1)
      if (m.computed) {
        if (m.property.type !== 'Literal') fail(text, 'use a quoted name or a number inside [ ]')
      } else if (m.property.type !== 'Identifier') fail(text, 'expected a field name after "."')
      return
    }
    case 'ArrayExpression':
      for (const e of (node as jsep.ArrayExpression).elements) {
        if (!e) fail(text, 'empty element in a list')
        check(e, text, depth + 1)
      }
      return
    case 'UnaryExpression': {
      const u = node as jsep.UnaryExpression
      if (u.operator !== '!' && u.operator !== '-') fail(text, `operator ${u.operator} is not supported`)
      check(u.argument, text, depth + 1)
      return
    }
    case 'BinaryExpression':
    case 'LogicalExpression': {
      const b = node as jsep.BinaryExpression
      if (!EQUAL.has(b.operator) && !COMPARE.has(b.operator) && !['&&', '||', 'in'].includes(b.operator))
        fail(text, `operator ${b.operator} is not supported (use == != < <= > >= && || ! in)`)
      check(b.left, text, depth + 1)
      check(b.right, text, depth + 1)
      return
    }
    case 'CallExpression':
      return fail(text, 'function calls are not supported')
    case 'Compound':
      return fail(text, 'one expression only')
    default:
      return fail(text, `${node.type} is not supported`)
  }
}

function evaluate(node: Node, event: Readonly<Record<string, unknown>>): Value {
  switch (node.type) {
    case 'Literal':
      return (node as jsep.Literal).value
    case 'Identifier':
      return field(event, (node as jsep.Identifier).name)
    case 'MemberExpression': {
      const m = node as jsep.MemberExpression
      const key = m.computed ? (m.property as jsep.Literal).value : (m.property as jsep.Identifier).name
      return field(evaluate(m.object, event), key)
    }
    case 'ArrayExpression':
      return (node as jsep.ArrayExpression).elements.map((e) => evaluate(e!, event))
    case 'UnaryExpression': {
      const u = node as jsep.UnaryExpression
      const v = evaluate(u.argument, event)
      if (u.operator === '!') return !truthy(v)
      return typeof v === 'number' ? -v : null
    }
    default: {
      const b = node as jsep.BinaryExpression
      if (b.operator === '&&') return truthy(evaluate(b.left, event)) && truthy(evaluate(b.right, event))
      if (b.operator === '||') return truthy(evaluate(b.left, event)) || truthy(evaluate(b.right, event))
      const left = evaluate(b.left, event) ?? null
      const right = evaluate(b.right, event) ?? null
      switch (b.operator) {
        case '==':
        case '===':
          return equal(left, right)
        case '!=':
        case '!==':
          return !equal(left, right)
        case 'in':
          if (Array.isArray(right)) return right.some((r) => equal(left, r))
          return typeof right === 'string' && typeof left === 'string' && right.includes(left)
      }
      const comparable =
        (typeof left === 'number' && typeof right === 'number') ||
        (typeof left === 'string' && typeof right === 'string')
      if (!comparable) return false
      const [l, r] = [left as number | string, right as number | string]
      return b.operator === '<' ? l < r : b.operator === '<=' ? l <= r : b.operator === '>' ? l > r : l >= r
    }
  }
}

/**
 * Compiles a filter expression into a predicate over events.
 * @throws InvalidInputError naming what is wrong and where
 */
export function compileFilter(text: string): EventFilter {
  if (text.length > MAX_FILTER_LENGTH)
    fail(text.slice(0, 40) + '…', `longer than ${MAX_FILTER_LENGTH} characters`)
  if (text.trim() === '') fail(text, 'empty expression')
  let tree: Node
  try {
    tree = jsep(text)
  } catch (error) {
    const why = (error as Error).message
    fail(text, /Unexpected "="/.test(why) ? `${why} (compare with ==)` : why)
  }
  check(tree, text, 0)
  return (event) => truthy(evaluate(tree, event))
}
