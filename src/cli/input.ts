import {readFile} from 'node:fs/promises'

import {InvalidInputError} from '../bus/errors.js'

/** Reads all of stdin as text; refuses when stdin is a terminal (nothing was piped in). */
export async function readStdin(): Promise<string> {
  if (process.stdin.isTTY)
    throw new InvalidInputError('nothing on stdin: pipe the input in, e.g. `cat events.ndjson | raptor …`')
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

/** Reads `@file`, `@-` (stdin) or returns the literal text. */
export async function readArgText(value: string, what: string): Promise<{text: string; origin: string}> {
  if (value === '@-') return {text: await readStdin(), origin: 'stdin'}
  if (value.startsWith('@')) {
    const path = value.slice(1)
    try {
      return {text: await readFile(path, 'utf8'), origin: path}
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      throw new InvalidInputError(
        `cannot read ${what} file '${path}' (${code ?? (error as Error).message}): check the path`,
      )
    }
  }
  return {text: value, origin: what}
}

/** Parses JSON, naming where it came from and where it broke. */
export function parseJson(text: string, origin: string): unknown {
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new InvalidInputError(`malformed JSON in ${origin}: ${(error as Error).message}`)
  }
}

/** Parses a JSON object payload (not an array, not a scalar). */
export function parsePayload(text: string, origin: string): Record<string, unknown> {
  return asPayload(parseJson(text, origin), origin)
}

/** Checks that a parsed value is a JSON object payload. */
export function asPayload(value: unknown, origin: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidInputError(`payload in ${origin} must be a JSON object, e.g. {"key":"value"}`)
  }
  return value as Record<string, unknown>
}

/** Splits NDJSON into parsed lines, skipping blank ones; errors name the line number. */
export function parseNdjson(text: string, origin: string): unknown[] {
  const values: unknown[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim()
    if (line === '') continue
    values.push(parseJson(line, `${origin} line ${i + 1}`))
  }
  return values
}
