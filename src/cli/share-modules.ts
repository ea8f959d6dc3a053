import * as nodeModule from 'node:module'

let registered = false

/**
 * Lets plugins and config files outside any project import `raptorbus` and `zod`: registers
 * `resolve-hook.js`, which falls back to the CLI's own copies when the importing file's directory
 * has none. Called once, just before the first plugin or JS config is imported (the loader thread
 * it starts costs a few ms, so a plain `raptor publish` never pays for it). On a Node without
 * `module.register` (before 20.6) it does nothing and such imports need a local `npm install`.
 */
export function shareModules(): void {
  if (registered) return
  registered = true
  const register = (nodeModule as {register?: typeof nodeModule.register}).register
  if (typeof register !== 'function') return
  register('./resolve-hook.js', import.meta.url, {data: {cliUrl: import.meta.url}})
}
