import {existsSync} from 'node:fs'
import {resolve} from 'node:path'
import {pathToFileURL} from 'node:url'

import {PluginError} from '../bus/errors.js'
import {resolveHandler, type ResolvedHandler} from '../bus/handler.js'
import {shareModules} from '../cli/share-modules.js'

/** A handler and the plugin file it came from. */
export interface LoadedHandler extends ResolvedHandler {
  plugin: string
}

/**
 * Loads one ES-module plugin: its default export is a handler definition or an array of them.
 * @throws PluginError naming the file and, for an invalid definition, the field
 */
export async function loadPlugin(file: string, cwd = process.cwd()): Promise<LoadedHandler[]> {
  const path = resolve(cwd, file)
  if (!existsSync(path)) throw new PluginError(`plugin file not found: ${file}`, {plugin: file})
  let mod: {default?: unknown}
  shareModules()
  try {
    mod = (await import(pathToFileURL(path).href)) as {default?: unknown}
  } catch (error) {
    throw new PluginError(
      `cannot load plugin ${file}: ${(error as Error).message}`,
      {plugin: file},
      {cause: error},
    )
  }
  if (mod.default === undefined) {
    throw new PluginError(
      `plugin ${file} has no default export: export default defineHandler({name, channels, handle})`,
      {
        plugin: file,
      },
    )
  }
  const definitions = Array.isArray(mod.default) ? mod.default : [mod.default]
  if (definitions.length === 0)
    throw new PluginError(`plugin ${file} exports an empty array of handlers`, {plugin: file})
  return definitions.map((d, i) => ({
    ...resolveHandler(d, definitions.length > 1 ? `plugin ${file} (handler ${i + 1})` : `plugin ${file}`),
    plugin: file,
  }))
}

/** Loads several plugins; two handlers of the same name would share one consumer group, so that is refused. */
export async function loadPlugins(files: readonly string[], cwd = process.cwd()): Promise<LoadedHandler[]> {
  const handlers: LoadedHandler[] = []
  for (const file of files) {
    for (const h of await loadPlugin(file, cwd)) {
      const clash = handlers.find((o) => o.name === h.name)
      if (clash) {
        throw new PluginError(
          `handler name '${h.name}' is defined twice (${clash.plugin} and ${h.plugin}): names must be unique`,
          {
            plugin: h.plugin,
          },
        )
      }
      handlers.push(h)
    }
  }
  return handlers
}
