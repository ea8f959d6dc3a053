/**
 * Module resolve hook (runs in Node's loader thread; registered by `shareModules()`): a plugin or a
 * `raptor.config.js` anywhere on disk may import `raptorbus` and `zod` without installing them.
 * Resolution is first tried as usual, from the importing file, so a project with its own copies
 * keeps them; only when that fails are these packages resolved from the CLI's own installation.
 */

/** Packages the CLI lends to plugins and config files (and their subpaths). */
const SHARED = ['raptorbus', 'zod']

interface ResolveContext {
  parentURL?: string
  conditions: string[]
  importAttributes?: Record<string, string>
}
type NextResolve = (specifier: string, context?: Partial<ResolveContext>) => Promise<unknown>

let cliUrl: string | undefined

/** Receives the URL of a file inside the CLI's installation (the `data` of `register`). */
export function initialize(data: {cliUrl: string}): void {
  cliUrl = data.cliUrl
}

export async function resolve(
  specifier: string,
  context: ResolveContext,
  nextResolve: NextResolve,
): Promise<unknown> {
  try {
    return await nextResolve(specifier, context)
  } catch (error) {
    const shared = SHARED.some((name) => specifier === name || specifier.startsWith(name + '/'))
    if (!shared || !cliUrl || (error as {code?: string}).code !== 'ERR_MODULE_NOT_FOUND') throw error
    return nextResolve(specifier, {...context, parentURL: cliUrl})
  }
}
