import {stripVTControlCharacters} from 'node:util'

/** One column of a table. */
export interface Column {
  header: string
  /** `right` for numbers; by default a column whose every cell is a number (or `-`) is right-aligned. */
  align?: 'left' | 'right'
  /** May be cut with `…` to fit the terminal. @defaultValue true */
  shrink?: boolean
  /**
   * Never cut narrower than this (a cut below it says too little to be worth the space): when the
   * table cannot fit otherwise, a column of lower priority is left out instead. @defaultValue 4
   */
  minWidth?: number
  /** Columns with the lowest priority are left out first when even cut columns cannot fit. @defaultValue 1 */
  priority?: number
  /**
   * Extra detail: left out (lowest priority first) while the table is wider than the terminal,
   * before any other column is cut. @defaultValue false
   */
  optional?: boolean
  /**
   * Free text (an error message): the column that gives way first, cut down to `minWidth` before
   * any optional column is left out or any other column is cut. @defaultValue false
   */
  flex?: boolean
}

export interface TableOptions {
  /** Terminal width to fit; `undefined` (not a terminal) never cuts and never drops a column. */
  width?: number
  /** Styles the header row (bold on a terminal). */
  bold?: (text: string) => string
}

/** A cell: numbers print as plain digits, so that they can be copied. */
type Cell = string | number | null | undefined

/** Visible width of a cell (colour codes do not count). */
export function visibleWidth(text: string): number {
  return stripVTControlCharacters(text).length
}

/** Cuts text to `max` visible characters, ending with `…` when cut (colour is dropped from a cut cell). */
export function cutText(text: string, max: number): string {
  const plain = stripVTControlCharacters(text)
  if (plain.length <= max) return text
  if (max <= 1) return max === 1 ? '…' : ''
  return plain.slice(0, max - 1) + '…'
}

const NUMERIC = /^-?[\d.,]+( ?%)?$|^-$|^\?$/

/**
 * A compact table: a header and one line per row, columns two spaces apart, numbers right-aligned,
 * no borders or row separators. On a terminal (`width` given) it fits the width: free text (`flex`)
 * is cut first down to its minimum, then optional columns are left out (lowest priority first),
 * then columns of the lowest priority while even the minimum widths cannot fit, and at last the
 * widest shrinkable column is cut with `…`, one character at a time. Off a terminal nothing is cut, so scripts get every character.
 */
export function renderTable(
  columns: readonly Column[],
  rows: readonly Cell[][],
  options: TableOptions = {},
): string {
  const text = rows.map((r) =>
    columns.map((_, i) => (r[i] === null || r[i] === undefined ? '' : String(r[i]))),
  )
  let keep = columns.map((_, i) => i)
  // A column of numbers (where `-` or `?` may stand for none) is right-aligned.
  const right = columns.map((c, i) => {
    if (c.align !== undefined) return c.align === 'right'
    const cells = text.map((r) => stripVTControlCharacters(r[i]))
    return cells.some((t) => /\d/.test(t)) && cells.every((t) => NUMERIC.test(t))
  })
  const natural = columns.map((c, i) =>
    Math.max(visibleWidth(c.header), ...text.map((r) => visibleWidth(r[i]))),
  )
  const widths = [...natural]
  const min = (i: number) =>
    columns[i].shrink === false
      ? natural[i]
      : Math.min(natural[i], Math.max(visibleWidth(columns[i].header), columns[i].minWidth ?? 4))
  if (options.width !== undefined) {
    const limit = options.width
    const total = () => keep.reduce((n, i) => n + widths[i], 0) + 2 * (keep.length - 1)
    // Free text gives way first, down to its minimum width.
    for (const i of keep.filter((k) => columns[k].flex)) {
      const excess = total() - limit
      if (excess > 0) widths[i] = Math.max(min(i), widths[i] - excess)
    }
    // Extra detail goes next, whole columns at a time, so that the essential ones need no cutting.
    while (total() > limit) {
      const optional = keep.filter((i) => columns[i].optional)
      if (optional.length === 0) break
      const lowest = Math.min(...optional.map((i) => columns[i].priority ?? 1))
      const drop = optional.filter((i) => (columns[i].priority ?? 1) === lowest).at(-1)!
      keep = keep.filter((i) => i !== drop)
    }
    // Leave out the least important columns while even their minimum widths cannot fit.
    while (keep.length > 1 && keep.reduce((n, i) => n + min(i), 0) + 2 * (keep.length - 1) > limit) {
      const lowest = Math.min(...keep.map((i) => columns[i].priority ?? 1))
      const drop = keep.filter((i) => (columns[i].priority ?? 1) === lowest).at(-1)!
      keep = keep.filter((i) => i !== drop)
    }
    // Then cut the widest shrinkable column, one character at a time, until the table fits.
    let excess = total() - limit
    while (excess > 0) {
      const candidates = keep.filter((i) => widths[i] > min(i))
      if (candidates.length === 0) break
      const widest = candidates.reduce((a, b) => (widths[b] > widths[a] ? b : a))
      widths[widest]--
      excess--
    }
  }
  const bold = options.bold ?? ((s: string) => s)
  const line = (cells: string[], header = false) =>
    keep
      .map((i, k) => {
        const cell = cutText(cells[i], widths[i])
        const pad = ' '.repeat(Math.max(0, widths[i] - visibleWidth(cell)))
        const styled = header ? bold(cell) : cell
        if (right[i]) return pad + styled
        return k === keep.length - 1 ? styled : styled + pad
      })
      .join('  ')
      .trimEnd()
  return [
    line(
      columns.map((c) => c.header),
      true,
    ),
    ...text.map((r) => line(r)),
  ].join('\n')
}

/**
 * Lays out `label value` groups in lines no wider than `width`, two spaces apart (a summary above a
 * table, say).
 */
export function flow(items: readonly string[], width = Infinity): string {
  const lines: string[] = []
  let current = ''
  for (const item of items) {
    if (current !== '' && visibleWidth(current) + 2 + visibleWidth(item) > width) {
      lines.push(current)
      current = item
    } else current = current === '' ? item : `${current}  ${item}`
  }
  if (current !== '') lines.push(current)
  return lines.join('\n')
}
