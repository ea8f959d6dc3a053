/**
 * The Redis Cluster row (issue 10): publish throughput of two publisher processes over 30 channels
 * on a cluster of 1 master and on a cluster of 3 masters, in the same run, interleaved; Redis CPU per
 * event on each master (INFO cpu deltas); and what live fan-out costs the servers: classic PUBLISH
 * (broadcast to every node of a cluster) against SPUBLISH (its own shard only), as raptor does.
 */
import {fork} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import calculateSlot from 'cluster-key-slot'
import {Cluster, Redis} from 'ioredis'

import {RedisCluster, RedisServer, freePort} from '../test/helpers/redis-server.js'
import type {PubStart} from './cluster-pub.js'
import {interleave, over, ratioOver, type BenchRow, type Case} from './harness.js'
import {fmt, fmtRatio, fmtStat, markdownTable, tag} from './lib.js'

const CHANNELS = Array.from({length: 30}, (_, i) => `bench.c${i}`)
const PUBLISHERS = 2

/** used_cpu_user + used_cpu_sys of one server, µs. */
async function cpuOf(node: Redis): Promise<number> {
  const info = await node.info('cpu')
  const num = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN)
  return (num('used_cpu_user') + num('used_cpu_sys')) * 1e6
}

/** One connection per master of a cluster, in port order. */
async function mastersOf(cluster: {nodes: {port: number}[]}): Promise<Redis[]> {
  return cluster.nodes.map((n) => new Redis(n.port, '127.0.0.1'))
}

/**
 * A Redis Cluster of one master holding every slot (`redis-cli --cluster create` wants three):
 * one cluster-enabled redis-server given slots 0–16383 with CLUSTER ADDSLOTSRANGE.
 */
async function oneMasterCluster(): Promise<{url: string; nodes: RedisServer[]; stop(): Promise<void>}> {
  const dir = mkdtempSync(join(tmpdir(), 'raptor-bench-cluster-'))
  let port = await freePort()
  while (port + 10000 > 65535) port = await freePort()
  const node = await RedisServer.start(port, [
    '--cluster-enabled',
    'yes',
    // Alone, a node does not know its own address: CLUSTER SLOTS would answer "" for it.
    '--cluster-announce-ip',
    '127.0.0.1',
    '--cluster-config-file',
    join(dir, 'nodes.conf'),
    '--dir',
    dir,
  ])
  const admin = new Redis(port, '127.0.0.1')
  try {
    await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383')
    for (let i = 0; i < 200 && !/cluster_state:ok/.test((await admin.call('CLUSTER', 'INFO')) as string); i++)
      await new Promise((r) => setTimeout(r, 50))
  } finally {
    admin.disconnect()
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    nodes: [node],
    stop: async () => {
      await node.stop()
      rmSync(dir, {recursive: true, force: true})
    },
  }
}

interface PublishRound {
  rate: number
  /** Redis CPU per event on each master, µs (port order). */
  perMaster: number[]
  /** Over all masters, µs per event. */
  redisUs: number
  /** Client CPU per event (both publishers), µs. */
  clientUs: number
}

/** Two publisher processes, each `events / 2` events over the 30 channels, at most `window` in flight each. */
async function publishRound(url: string, masters: Redis[], events: number, payloadBytes: number) {
  const prefix = `bc${tag()}`
  const children = Array.from({length: PUBLISHERS}, () =>
    fork(fileURLToPath(new URL('./cluster-pub.js', import.meta.url)), {stdio: 'inherit'}),
  )
  const next = (child: ReturnType<typeof fork>) =>
    new Promise<{cpuUs?: number}>((resolve, reject) => {
      child.once('message', resolve)
      child.once('exit', (code) => code !== 0 && reject(new Error(`cluster publisher exited with ${code}`)))
    })
  try {
    const ready = children.map(next)
    const start: PubStart = {
      url,
      prefix,
      channels: CHANNELS,
      events: events / PUBLISHERS,
      window: 100,
      payloadBytes,
    }
    for (const c of children) c.send(start)
    await Promise.all(ready)
    const before = await Promise.all(masters.map(cpuOf))
    const done = children.map(next)
    const started = performance.now()
    for (const c of children) c.send({go: true})
    const reports = await Promise.all(done)
    const ms = performance.now() - started
    const after = await Promise.all(masters.map(cpuOf))
    const perMaster = after.map((a, i) => (a - before[i]) / events)
    return {
      rate: events / (ms / 1000),
      perMaster,
      redisUs: perMaster.reduce((a, b) => a + b, 0),
      clientUs: reports.reduce((n, r) => n + (r.cpuUs ?? 0), 0) / events,
    } satisfies PublishRound
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill()
  }
}

/** Server CPU of N fan-out commands sent the classic way (PUBLISH) or sharded (SPUBLISH), µs per command. */
async function fanoutRound(cluster: Cluster, masters: Redis[], kind: 'publish' | 'spublish', n: number) {
  const names = CHANNELS.map((c) => `bench:live@0:{${c}}`)
  const before = await Promise.all(masters.map(cpuOf))
  const started = performance.now()
  const window = 100
  let next = 0
  await Promise.all(
    Array.from({length: window}, async () => {
      while (next < n) {
        const name = names[next++ % names.length]
        await (kind === 'publish'
          ? cluster.publish(name, 'x'.repeat(500))
          : cluster.spublish(name, 'x'.repeat(500)))
      }
    }),
  )
  const ms = performance.now() - started
  const after = await Promise.all(masters.map(cpuOf))
  const perMaster = after.map((a, i) => (a - before[i]) / n)
  return {rate: n / (ms / 1000), perMaster, redisUs: perMaster.reduce((a, b) => a + b, 0)}
}

export const clusterRow: BenchRow = {
  name: 'cluster',
  title: 'Redis Cluster: publish on 1 vs 3 masters, Redis CPU per event per master, SPUBLISH vs PUBLISH',
  run: async ({s}) => {
    const one = await oneMasterCluster()
    const three = await RedisCluster.start(3)
    const oneMasters = await mastersOf(one)
    const threeMasters = await mastersOf(three)
    const client = new Cluster(three.nodes.map((n) => ({host: '127.0.0.1', port: n.port})))
    try {
      const flushAll = async () => {
        await Promise.all([...oneMasters, ...threeMasters].map((m) => m.flushall('SYNC')))
      }
      const events = s.events
      const payloadBytes = s.payloadBytes
      const publishCases: Case<PublishRound>[] = [
        {key: 'one', label: '1 master', run: () => publishRound(one.url, oneMasters, events, payloadBytes)},
        {
          key: 'three',
          label: '3 masters',
          run: () => publishRound(three.url, threeMasters, events, payloadBytes),
        },
      ]
      const pub = await interleave(publishCases, s.runs, {
        between: flushAll,
        describe: (r) =>
          `${fmt(r.rate)} events/s, Redis ${r.perMaster.map((u) => u.toFixed(1)).join(' / ')} µs/event`,
      })
      await new Promise<void>((resolve) =>
        client.status === 'ready' ? resolve() : client.once('ready', resolve),
      )
      const n = s.quick ? 20_000 : 100_000
      type Fan = Awaited<ReturnType<typeof fanoutRound>>
      const fanCases: Case<Fan>[] = [
        {
          key: 'publish',
          label: 'PUBLISH (classic)',
          run: () => fanoutRound(client, threeMasters, 'publish', n),
        },
        {
          key: 'spublish',
          label: 'SPUBLISH (sharded)',
          run: () => fanoutRound(client, threeMasters, 'spublish', n),
        },
      ]
      const fan = await interleave(fanCases, s.runs, {
        describe: (r) =>
          `${fmt(r.rate)}/s, Redis ${r.perMaster.map((u) => u.toFixed(2)).join(' / ')} µs/command`,
      })

      // Where the 30 channels live on the 3-master cluster.
      const owners = new Map<string, number>()
      const slots = (await threeMasters[0].call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][]
      for (const c of CHANNELS) {
        const slot = calculateSlot(`{${c}}`)
        const range = slots.find(([lo, hi]) => slot >= lo && slot <= hi)
        const port = String(range?.[2][1] ?? '?')
        owners.set(port, (owners.get(port) ?? 0) + 1)
      }
      const spread = three.nodes.map((node) => owners.get(String(node.port)) ?? 0).join(' / ')

      const oneR = pub.get('one')
      const threeR = pub.get('three')
      const perMasterCell = (r: typeof oneR) =>
        r
          ? r.rounds[0].perMaster
              .map((_, i) =>
                fmtStat(
                  over(r, (x) => x.perMaster[i]),
                  1,
                ),
              )
              .join(' · ')
          : '–'
      const rows = [oneR, threeR].map((r) => [
        r?.label ?? '–',
        fmtStat(over(r, (x) => x.rate)),
        perMasterCell(r),
        fmtStat(
          over(r, (x) => x.redisUs),
          1,
        ),
        fmtStat(
          over(r, (x) => x.clientUs),
          1,
        ),
      ])
      const fanRows = ['publish', 'spublish'].map((k) => {
        const r = fan.get(k)
        return [
          r?.label ?? k,
          fmtStat(over(r, (x) => x.rate)),
          r
            ? r.rounds[0].perMaster
                .map((_, i) =>
                  fmtStat(
                    over(r, (x) => x.perMaster[i]),
                    2,
                  ),
                )
                .join(' · ')
            : '–',
          fmtStat(
            over(r, (x) => x.redisUs),
            2,
          ),
        ]
      })
      const markdown = [
        `${PUBLISHERS} publisher processes (\`bus.publish\`, 100 in flight each), ${events} events in all over ${CHANNELS.length} channels ` +
          `(${spread} of them on the 3 masters), ${payloadBytes}-byte payloads; a cluster of 1 master and one of 3, each its own ` +
          `redis-server processes on this machine, interleaved round by round. Redis CPU per event is each master's INFO cpu ` +
          `(used_cpu_user + used_cpu_sys) delta over the events published.`,
        '',
        markdownTable(
          [
            'cluster',
            'events/s',
            'Redis CPU µs/event, per master',
            'Redis CPU µs/event, all masters',
            'client CPU µs/event',
          ],
          rows,
        ),
        '',
        `3 masters ÷ 1 master, events/s (round by round): ${fmtRatio(ratioOver(threeR, oneR, (x) => x.rate))}. ` +
          "The publishers and every master share the machine's cores, so this is not the scaling of separate machines; " +
          "it shows the work spreading: each master carries its share of the channels. A master's figure also holds " +
          'its own background work (cluster bus, cron) over the run.',
        '',
        `Live fan-out cost on the 3-master cluster: ${n} commands of a 500-byte message, no subscribers, ` +
          `raw ioredis (100 in flight) over the 30 channels' live names. Classic PUBLISH is broadcast over the cluster bus ` +
          "to every node; SPUBLISH (what raptor's publish script does on a cluster) stays on the shard that owns the channel.",
        '',
        markdownTable(['command', 'commands/s', 'Redis CPU µs/command, per master', 'all masters'], fanRows),
        '',
        `PUBLISH ÷ SPUBLISH, server CPU (round by round): ${fmtRatio(
          ratioOver(fan.get('publish'), fan.get('spublish'), (x) => x.redisUs),
        )}.`,
      ].join('\n')
      return {markdown}
    } finally {
      client.disconnect()
      for (const m of [...oneMasters, ...threeMasters]) m.disconnect()
      await Promise.all([one.stop(), three.stop()])
    }
  },
}
