import type {HandlerDefinition} from './handler.js'

/**
 * Typed identity helper for plugin authors: `export default defineHandler({name, channels, handle})`.
 * (Its own module, so that `import {defineHandler} from 'raptorbus'` loads no validation code.)
 */
export function defineHandler<T extends HandlerDefinition | HandlerDefinition[]>(definition: T): T {
  return definition
}
