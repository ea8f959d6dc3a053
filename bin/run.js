#!/usr/bin/env -S node --max-semi-space-size=4
// --max-semi-space-size=4: a smaller young generation keeps a long-lived agent's memory flat under a
// backlog (~120 MB instead of ~150 MB RSS with 100k queued events) for a few percent of throughput.
import {execute} from '@oclif/core'

// DEBUG=oclif:* prints argv and DEBUG=ioredis:* the AUTH command: scrub passwords from both first.
if (process.env.DEBUG) (await import('../dist/cli/debug-guard.js')).guardDebug(process.argv, process.env)

await execute({dir: import.meta.url})
