// An example handler plugin: run it with
//   raptor agent --plugin examples/plugins/research-monitor.js
// and publish a research_complete event to sys.guild.research.broadcast.
import {defineHandler} from 'raptorbus'

export default defineHandler({
  name: 'research_monitor',
  channels: ['sys.guild.research.broadcast'],
  types: ['research_complete'],
  maxRetries: 3,
  backoff: {initialMs: 200, maxMs: 30_000, factor: 2, jitter: true},
  timeoutMs: 30_000,
  async handle(event, ctx) {
    ctx.log.info('research complete', {findings: event.data.findings, attempt: ctx.attempt})
    // Tell the frontend: a state update for every finished piece of research.
    await ctx.publish({
      channel: 'sys.state.update',
      type: 'research_recorded',
      payload: {researchEvent: event.id, confidence: event.data.confidence ?? null},
    })
  },
})
