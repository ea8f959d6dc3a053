/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core (no browser download;
 * `.ci/run` installs `chromium` from Debian). A screenshot of the page goes to .test-output/.
 */
import {existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {chromium, type BrowserContext, type Page} from 'playwright-core'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'

import type {RaptorBus} from '../../src/bus/index.js'
import type {Gateway} from '../../src/gateway/server.js'
import {startTestGateway} from '../helpers/gateway.js'
import {startCli, target, testBuses, waitFor, type RunningCli} from '../helpers/index.js'
import {addDlq} from '../helpers/ops.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const OUTPUT = fileURLToPath(new URL('../../.test-output/', import.meta.url))
const FLAKY = fileURLToPath(new URL('../fixtures/plugins/flaky.mjs', import.meta.url))

const bus = testBuses()
let context: BrowserContext
let profile: string
const open: {close(): unknown}[] = []
const agents: RunningCli[] = []

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`)
  profile = mkdtempSync(join(tmpdir(), 'raptor-chromium-'))
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: {width: 1440, height: 900},
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
})

afterAll(async () => {
  await context?.close()
  if (profile) rmSync(profile, {recursive: true, force: true})
})

afterEach(async () => {
  for (const a of agents.splice(0)) {
    a.child.kill('SIGTERM')
    await a.exited
  }
  while (open.length > 0) await open.pop()!.close()
  for (const page of context.pages()) await page.close()
})

async function dashboard(): Promise<{bus: RaptorBus; gateway: Gateway; page: Page; errors: string[]}> {
  const b = await bus()
  const gateway = await startTestGateway(b)
  open.push(gateway)
  const page = await context.newPage()
  const errors: string[] = []
  page.on('pageerror', (error) => errors.push(error.message))
  // Failed requests are judged by their response below (the browser also logs each to the console).
  page.on(
    'console',
    (m) =>
      void (m.type() === 'error' && !m.text().startsWith('Failed to load resource') && errors.push(m.text())),
  )
  page.on('response', (r) => {
    // /v1/health answers 503 when the bus is degraded (e.g. Redis latency on a busy machine): the page shows it.
    const expected = r.url().includes('/v1/health') && r.status() === 503
    if (r.status() >= 400 && !expected) errors.push(`${r.status()} ${r.url()}`)
  })
  // Nothing may be fetched from outside: every request goes to the gateway.
  page.on(
    'request',
    (r) => void (!r.url().startsWith(gateway.url) && errors.push(`external request ${r.url()}`)),
  )
  await page.goto(`${gateway.url}/`)
  await page.locator('#tail-state', {hasText: 'Listening on **'}).waitFor()
  return {bus: b, gateway, page, errors}
}

async function postEvent(url: string, event: Record<string, unknown>) {
  const res = await fetch(`${url}/v1/events`, {
    method: 'POST',
    headers: {'content-type': 'application/cloudevents+json'},
    body: JSON.stringify({specversion: '1.0', source: 'test', ...event}),
  })
  expect(res.status).toBe(201)
}

describe('dashboard', () => {
  it('shows a published event in the live tail, with pattern and filter; channels get a rate', async () => {
    const {gateway, page, errors} = await dashboard()
    await page.fill('#tail-pattern', 'sys.state.update')
    await page.fill('#tail-where', 'data.user_id == "u1"')
    await page.click('#tail-toggle') // stop
    await page.click('#tail-toggle') // start with the new pattern and filter
    await page
      .locator('#tail-state', {hasText: 'Listening on sys.state.update where data.user_id == "u1"'})
      .waitFor()
    await postEvent(gateway.url, {type: 'not_mine', channel: 'sys.state.update', data: {user_id: 'u2'}})
    await postEvent(gateway.url, {type: 'other_channel', channel: 'sys.alert.warning', data: {user_id: 'u1'}})
    await postEvent(gateway.url, {
      type: 'step_done',
      channel: 'sys.state.update',
      data: {user_id: 'u1', step: 3},
    })
    const line = page.locator('#tail li', {hasText: 'step_done'})
    await line.waitFor()
    expect(await page.locator('#tail li').count()).toBe(1)
    expect(await line.textContent()).toContain('{"user_id":"u1","step":3}')
    await line.click()
    expect(await line.textContent()).toContain('"channel": "sys.state.update"')
    // The channel shows up with its length and a rate.
    const channel = page.locator('#channels tbody tr', {hasText: 'sys.state.update'})
    await waitFor(async () => /\d+(\.\d)?\/s/.test((await channel.textContent()) ?? ''), 10_000, 'a rate')
    expect(errors).toEqual([])
    // A bad filter is shown, not thrown (the browser logs the 400 itself).
    await page.click('#tail-toggle')
    await page.fill('#tail-where', 'data.user_id = "u1"')
    await page.click('#tail-toggle')
    await page.locator('#tail-state', {hasText: 'Error: invalid filter'}).waitFor()
  })

  it('requeues a dead letter from the page and a real raptor agent handles it; agents show their heartbeat', async () => {
    const {bus: b, gateway, page, errors} = await dashboard()
    const ok = join(mkdtempSync(join(tmpdir(), 'raptor-flaky-')), 'ok')
    const agent = startCli(
      [
        'agent',
        '--plugin',
        FLAKY,
        '--id',
        'dash-agent',
        '--heartbeat-interval',
        '1s',
        ...target(b.keys.prefix),
      ],
      {
        env: {FLAKY_OK_FILE: ok},
        timeoutMs: 120_000,
      },
    )
    agents.push(agent)
    await waitFor(() => agent.stderr.includes('agent dash-agent started'), 20_000, 'the agent')
    await postEvent(gateway.url, {type: 'job', channel: 'sys.guild.research.broadcast', data: {job: 7}})
    // It fails (no retries) and lands in the DLQ; the page lists it within its refresh.
    const row = page.locator('#dlq tbody tr', {hasText: 'flaky'})
    await row.waitFor({timeout: 20_000})
    expect(await row.textContent()).toContain('upstream 503')
    await page
      .locator('#agents tbody tr', {hasText: 'dash-agent'})
      .locator('.badge', {hasText: 'live'})
      .waitFor({timeout: 20_000})

    writeFileSync(ok, 'fixed')
    await row.locator('button', {hasText: 'Requeue'}).click()
    await page
      .locator('#toast', {hasText: 'requeued 1 → handler flaky on sys.guild.research.broadcast'})
      .waitFor()
    // The agent handles it this time, and says so on sys.state.update: the live tail shows it.
    await page.locator('#tail li', {hasText: 'handled'}).waitFor({timeout: 20_000})
    expect(await page.locator('#tail li', {hasText: 'handled'}).textContent()).toContain('"job":7')
    await page.locator('#dlq-empty').waitFor({state: 'visible', timeout: 20_000})
    expect(await b.dlq.list()).toEqual([])

    mkdirSync(OUTPUT, {recursive: true})
    await addDlq(b, [
      {
        channel: 'sys.alert.critical',
        reason: 'processing_timeout',
        handler: 'pager',
        error: 'handler exceeded 30000 ms',
      },
      {
        channel: 'sys.guild.matrix.broadcast',
        reason: 'schema_violation',
        handler: 'intel',
        error: 'data.score: expected number',
      },
    ])
    await page.locator('#dlq tbody tr', {hasText: 'pager'}).waitFor({timeout: 20_000})
    await page.screenshot({path: join(OUTPUT, 'dashboard.png')})
    expect(errors).toEqual([])
  })

  it('purges only after the confirmation, and only what was counted', async () => {
    const {bus: b, page, errors} = await dashboard()
    await addDlq(b, [{channel: 'sys.alert.warning'}, {channel: 'sys.alert.warning'}])
    await page.locator('#dlq-count', {hasText: '(2)'}).waitFor({timeout: 20_000})
    await page.click('#dlq-purge')
    await page.locator('#confirm-text', {hasText: 'Delete 2 dead letters for good?'}).waitFor()
    await page.click('#confirm button[value="cancel"]')
    await page.locator('#toast', {hasText: 'nothing deleted'}).waitFor()
    expect(await b.dlq.list()).toHaveLength(2)
    await page.click('#dlq-purge')
    await page.locator('#confirm-text', {hasText: 'Delete 2 dead letters for good?'}).waitFor()
    await page.click('#confirm-ok')
    await page.locator('#toast', {hasText: 'purged 2 entries'}).waitFor()
    expect(await b.dlq.list()).toEqual([])
    expect(errors).toEqual([])
  })
})
