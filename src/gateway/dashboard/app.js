// The raptor dashboard: plain browser JavaScript over the gateway's own API (no framework, no CDN).
// Everything shown comes from /v1/*; every value reaches the page through textContent, never as HTML.

const $ = (selector) => document.querySelector(selector)
const TAIL_MAX = 500
const RATE_EVERY_MS = 2000
const SLOW_EVERY_MS = 5000

/** Calls the API; throws an Error with the gateway's message when the answer is not 2xx. */
async function api(path, {method = 'GET', body, okStatuses = []} = {}) {
  const headers = {accept: 'application/json'}
  if (body !== undefined) headers['content-type'] = 'application/json'
  // Proves to the gateway that a cookie-authenticated change comes from this page.
  if (method !== 'GET') headers['x-raptor-csrf'] = '1'
  const response = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const data = await response.json().catch(() => ({}))
  if (!response.ok && !okStatuses.includes(response.status))
    throw new Error(data?.error?.message ?? `${response.status} ${response.statusText}`)
  return data
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag)
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = value
    else if (key === 'text') node.textContent = value
    else if (key.startsWith('data-')) node.setAttribute(key, value)
    else node[key] = value
  }
  for (const child of children) node.append(child)
  return node
}

function row(cells) {
  return el('tr', {}, ...cells.map((c) => (c instanceof Node ? el('td', {}, c) : el('td', c))))
}

let toastTimer
function toast(message, error = false) {
  const node = $('#toast')
  node.textContent = message
  node.className = `show${error ? ' error' : ''}`
  clearTimeout(toastTimer)
  toastTimer = setTimeout(() => (node.className = ''), error ? 6000 : 3000)
}

function ago(ms) {
  if (ms < 1000) return 'just now'
  const s = Math.round(ms / 1000)
  if (s < 120) return `${s} s ago`
  const m = Math.round(s / 60)
  return m < 120 ? `${m} min ago` : `${Math.round(m / 60)} h ago`
}

function duration(ms) {
  if (!ms) return '-'
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ])
    if (ms % size === 0) return `${ms / size}${unit}`
  return `${ms}ms`
}

function clock(iso) {
  const d = new Date(iso)
  return Number.isNaN(d.getTime())
    ? iso
    : d.toLocaleTimeString(undefined, {hour12: false}) + '.' + String(d.getMilliseconds()).padStart(3, '0')
}

// ── channels with live rates ────────────────────────────────────────────────────────────────

const lastCounts = new Map()
let lastSample = 0

async function refreshChannels() {
  const [{channels}, metrics] = await Promise.all([api('/v1/channels'), api('/v1/metrics')])
  const now = Date.now()
  const published = new Map(metrics.channels.map((c) => [c.channel, c.counters.published]))
  const body = $('#channels tbody')
  body.replaceChildren(
    ...channels
      .filter((c) => !c.pattern)
      .map((c) => {
        // A channel of the topology never published to has published nothing (DLQ rows have no rate).
        const count = published.get(c.name) ?? (c.name.startsWith('sys.dlq.') ? undefined : 0)
        let rate = '-'
        if (count !== undefined && lastCounts.has(c.name) && lastSample > 0) {
          const perSecond = ((count - lastCounts.get(c.name)) * 1000) / (now - lastSample)
          rate =
            perSecond === 0 ? '0/s' : `${perSecond < 10 ? perSecond.toFixed(1) : Math.round(perSecond)}/s`
        }
        if (count !== undefined) lastCounts.set(c.name, count)
        return row([
          {text: c.name, title: c.name, class: c.name.startsWith('sys.dlq.') ? 'muted' : ''},
          {text: rate, class: 'num'},
          {text: String(c.length), class: 'num'},
          {text: duration(c.retentionMs)},
          {text: c.lastEventAt ? ago(now - Date.parse(c.lastEventAt)) : '-', title: c.lastEventAt ?? ''},
        ])
      }),
  )
  lastSample = now
  $('#updated').textContent = `updated ${new Date(now).toLocaleTimeString(undefined, {hour12: false})}`
}

// ── health and agents ──────────────────────────────────────────────────────────────────────

async function refreshHealth() {
  // 503 means "not healthy": the report is the body all the same.
  const report = await api('/v1/health', {okStatuses: [503]})
  const status = $('#status')
  status.textContent = report.status
  status.dataset.state = report.status
  status.title = report.checks.map((c) => `${c.name}: ${c.status} — ${c.detail}`).join('\n')
  $('#redis').textContent =
    `Redis ${report.redisVersion} · ${report.latencyMs} ms · ${report.usedMemoryHuman}`
  const agents = report.agents
  $('#agents-empty').hidden = agents.length > 0
  $('#agents tbody').replaceChildren(
    ...agents.map((a) =>
      row([
        {text: a.id, title: a.id},
        {text: a.handlers.join(', ') || '-', title: a.handlers.join(', ')},
        {
          text: ago(a.ageMs),
          title: `every ${duration(a.intervalMs)}; last ${new Date(a.lastSeen).toISOString()}`,
        },
        el('span', {
          class: 'badge',
          'data-state': a.stale ? 'stale' : 'live',
          text: a.stale ? 'stale' : 'live',
        }),
      ]),
    ),
  )
}

// ── dead letters ───────────────────────────────────────────────────────────────────────────

let shownDlq = []

function dlqFilter() {
  const filter = {}
  const reason = $('#dlq-reason').value
  const channel = $('#dlq-channel').value.trim()
  if (reason) filter.reason = [reason]
  if (channel) filter.channel = [channel]
  return filter
}

async function refreshDlq() {
  const query = new URLSearchParams()
  const filter = dlqFilter()
  for (const [key, values] of Object.entries(filter)) for (const v of values) query.append(key, v)
  const {entries} = await api(`/v1/dlq?${query}`)
  shownDlq = entries
  $('#dlq-count').textContent =
    entries.length > 0 ? `(${entries.length}${entries.length === 100 ? '+' : ''})` : ''
  $('#dlq-empty').hidden = entries.length > 0
  $('#dlq-requeue-all').disabled = entries.length === 0
  $('#dlq tbody').replaceChildren(
    ...entries.map((e) => {
      const button = el('button', {
        class: 'small secondary',
        text: 'Requeue',
        type: 'button',
        'data-id': e.id,
      })
      button.addEventListener('click', () => requeue([e.id], button))
      const tr = row([
        {text: clock(e.failedAt), title: e.failedAt},
        {text: e.reason},
        {text: e.originalChannel, title: e.originalChannel},
        {text: e.handler ?? '-'},
        {text: e.event?.type ?? '?'},
        {text: String(e.attempts), class: 'num'},
        {text: e.error, title: e.error, class: 'error'},
        button,
      ])
      tr.dataset.id = e.id
      return tr
    }),
  )
}

async function requeue(ids, button) {
  if (button) button.disabled = true
  try {
    const result = await api('/v1/dlq/requeue', {method: 'POST', body: {id: ids}})
    const where = result.targets
      .map((t) => (t.handler ? `handler ${t.handler} on ${t.channel}` : `channel ${t.channel}`))
      .join(', ')
    toast(
      `requeued ${result.requeued}${where ? ` → ${where}` : ''}` +
        (result.skipped > 0 ? `; skipped ${result.skipped}: ${result.skippedEntries[0].why}` : ''),
      result.skipped > 0,
    )
  } catch (error) {
    toast(error.message, true)
  } finally {
    await refreshDlq().catch(() => {})
  }
}

async function purge() {
  const filter = dlqFilter()
  try {
    const counted = await api('/v1/dlq/purge', {method: 'POST', body: {...filter, dryRun: true}})
    if (counted.purged === 0) return toast('nothing to purge')
    const what = [filter.reason?.[0], filter.channel?.[0]].filter(Boolean).join(', ')
    $('#confirm-text').textContent =
      `Delete ${counted.purged} dead letter${counted.purged === 1 ? '' : 's'}${what ? ` (${what})` : ''} for good?`
    const dialog = $('#confirm')
    dialog.returnValue = ''
    dialog.showModal()
    await new Promise((resolve) => dialog.addEventListener('close', resolve, {once: true}))
    if (dialog.returnValue !== 'ok') return toast('nothing deleted')
    // `before` pins the purge to what was counted: later dead letters are left alone.
    const done = await api('/v1/dlq/purge', {
      method: 'POST',
      body: {...filter, yes: true, before: counted.before},
    })
    toast(`purged ${done.purged} entr${done.purged === 1 ? 'y' : 'ies'}`)
  } catch (error) {
    toast(error.message, true)
  } finally {
    await refreshDlq().catch(() => {})
  }
}

// ── live tail ──────────────────────────────────────────────────────────────────────────────

let tail = null

function tailLine(event) {
  const summary = JSON.stringify(event.data)
  const li = el(
    'li',
    {title: 'click to expand'},
    el('span', {class: 'time', text: clock(event.time) + ' '}),
    el('span', {class: 'channel', text: event.channel + ' '}),
    el('span', {class: `prio-${event.priority}`, text: event.type}),
    el('span', {class: 'muted', text: ` ${event.source} `}),
    el('span', {text: summary.length > 300 ? summary.slice(0, 300) + '…' : summary}),
  )
  li.addEventListener('click', () => {
    li.classList.toggle('open')
    if (li.classList.contains('open')) li.dataset.short = li.lastChild.textContent
    li.lastChild.textContent = li.classList.contains('open')
      ? '\n' + JSON.stringify(event, null, 2)
      : li.dataset.short
  })
  return li
}

/** Reads the SSE stream with fetch (so that errors show their message and the cookie rides along). */
async function runTail(state) {
  const list = $('#tail')
  while (!state.stopped) {
    const query = new URLSearchParams({pattern: state.pattern})
    if (state.where) query.set('where', state.where)
    const headers = {accept: 'text/event-stream'}
    if (state.lastEventId) headers['last-event-id'] = state.lastEventId
    try {
      const response = await fetch(`/v1/stream?${query}`, {
        headers,
        credentials: 'same-origin',
        signal: state.abort.signal,
      })
      if (!response.ok) {
        const body = await response.json().catch(() => ({}))
        throw Object.assign(new Error(body?.error?.message ?? `${response.status}`), {
          fatal: response.status < 500,
        })
      }
      $('#tail-state').textContent =
        `Listening on ${state.pattern}${state.where ? ` where ${state.where}` : ''} · ${state.count} events`
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
      let buffer = ''
      for (;;) {
        const {value, done} = await reader.read()
        if (done) break
        buffer += value
        let at
        while ((at = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, at)
          buffer = buffer.slice(at + 2)
          let type = 'message'
          const data = []
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) state.lastEventId = line.slice(4)
            else if (line.startsWith('event: ')) type = line.slice(7)
            else if (line.startsWith('data: ')) data.push(line.slice(6))
          }
          if (data.length === 0) continue
          if (type === 'message') {
            state.count++
            list.prepend(tailLine(JSON.parse(data.join('\n'))))
            while (list.childElementCount > TAIL_MAX) list.lastChild.remove()
            $('#tail-state').textContent =
              `Listening on ${state.pattern}${state.where ? ` where ${state.where}` : ''} · ${state.count} events`
          } else if (type === 'dropped' || type === 'error' || type === 'shutdown') {
            const info = JSON.parse(data.join('\n'))
            $('#tail-state').textContent =
              `Stream ended: ${info.reason ?? info.error?.message}; reconnecting…`
          }
        }
      }
    } catch (error) {
      if (state.stopped) return
      if (error.fatal) {
        $('#tail-state').textContent = `Error: ${error.message}`
        stopTail()
        return
      }
      $('#tail-state').textContent = `Disconnected (${error.message}); reconnecting…`
    }
    // Reconnects resume after the last event seen: no gap, no duplicate.
    if (!state.stopped) await new Promise((resolve) => setTimeout(resolve, 2000))
  }
}

function startTail() {
  const pattern = $('#tail-pattern').value.trim() || '**'
  const where = $('#tail-where').value.trim()
  tail = {pattern, where, stopped: false, abort: new AbortController(), count: 0, lastEventId: undefined}
  $('#tail-toggle').textContent = 'Stop'
  $('#tail-state').textContent = `Connecting to ${pattern}…`
  runTail(tail)
}

function stopTail() {
  if (!tail) return
  tail.stopped = true
  tail.abort.abort()
  tail = null
  $('#tail-toggle').textContent = 'Start'
}

// ── wiring ─────────────────────────────────────────────────────────────────────────────────

function every(ms, work) {
  const run = async () => {
    try {
      await work()
    } catch (error) {
      const status = $('#status')
      status.textContent = 'unreachable'
      status.dataset.state = 'down'
      status.title = error.message
    }
    setTimeout(run, ms)
  }
  run()
}

document.addEventListener('DOMContentLoaded', () => {
  $('#tail-form').addEventListener('submit', (event) => {
    event.preventDefault()
    if (tail) {
      stopTail()
      $('#tail-state').textContent = 'Stopped.'
    } else startTail()
  })
  $('#tail-clear').addEventListener('click', () => $('#tail').replaceChildren())
  $('#dlq-reason').addEventListener('change', () => refreshDlq().catch((e) => toast(e.message, true)))
  $('#dlq-channel').addEventListener('change', () => refreshDlq().catch((e) => toast(e.message, true)))
  $('#dlq-requeue-all').addEventListener('click', () => requeue(shownDlq.map((e) => e.id)))
  $('#dlq-purge').addEventListener('click', purge)
  every(RATE_EVERY_MS, refreshChannels)
  every(SLOW_EVERY_MS, refreshHealth)
  every(SLOW_EVERY_MS, refreshDlq)
  startTail()
})
