import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {basename, join, relative, resolve} from 'node:path'

import {Args, Flags} from '@oclif/core'

import {InvalidInputError} from '../bus/errors.js'
import {LocalCommand} from '../cli/base-command.js'

export interface InitResult {
  dir: string
  files: string[]
}

/** The files of a new project, by path; `{{name}}` and `{{version}}` are filled in. */
const FILES: Record<string, string> = {
  'package.json': `{
  "name": "{{name}}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "scripts": {
    "agent": "raptor agent --plugin handlers/greeter.js",
    "greet": "raptor publish --channel app.greetings --type greeting --payload '{\\"name\\":\\"world\\"}'"
  },
  "dependencies": {
    "raptorbus": "^{{version}}",
    "zod": "^4.0.0"
  }
}
`,
  'raptor.config.js': `// raptor reads this file from the working directory (or --config / RAPTOR_CONFIG).
import {z} from 'zod'

export default {
  // Channels beside the built-in sys.* ones, with how long each keeps history.
  channels: [{name: 'app.greetings', retention: '24h'}],
  // Payload schemas by event type: checked at publish (exit 2) and at consume (DLQ schema_violation).
  schemas: {greeting: z.object({name: z.string().min(1)})},
}
`,
  'handlers/greeter.js': `// A handler plugin: raptor agent --plugin handlers/greeter.js
import {defineHandler} from 'raptorbus'

export default defineHandler({
  name: 'greeter', // the consumer group: agents running it share its work
  channels: ['app.greetings'],
  types: ['greeting'],
  maxRetries: 3,
  async handle(event, ctx) {
    ctx.log.info(\`hello, \${event.data.name}\`, {event: event.id})
  },
})
`,
  '.gitignore': 'node_modules/\n',
}

export default class Init extends LocalCommand<typeof Init> {
  static override summary = 'Create a project: a config file, one handler plugin and a package.json.'
  static override description = `Writes raptor.config.js (a channel app.greetings and a zod payload schema), handlers/greeter.js (a handler for it) and package.json into DIR (default: the current directory), which raptor agent runs at once: plugins and config files may import raptorbus and zod from the CLI's own installation, or from the project's after npm install. Refuses to overwrite a file unless --force.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> my-agents && cd my-agents && raptor agent --plugin handlers/greeter.js',
    '<%= config.bin %> <%= command.id %> --force',
  ]

  static override args = {
    dir: Args.string({description: 'Directory of the new project (created when missing).', default: '.'}),
  }

  static override flags = {
    force: Flags.boolean({char: 'f', summary: 'Overwrite files that exist.'}),
  }

  async run(): Promise<InitResult> {
    const dir = resolve(this.args.dir)
    const name = sanitize(basename(dir))
    const version = (
      JSON.parse(readFileSync(join(this.config.root, 'package.json'), 'utf8')) as {version: string}
    ).version
    const existing = Object.keys(FILES).filter((f) => existsSync(join(dir, f)))
    if (existing.length > 0 && !this.flags.force)
      throw new InvalidInputError(
        `${existing.join(', ')} exist${existing.length === 1 ? 's' : ''} in ${dir}: pass --force to overwrite, or pick another directory`,
      )
    for (const [file, template] of Object.entries(FILES)) {
      const path = join(dir, file)
      mkdirSync(join(path, '..'), {recursive: true})
      writeFileSync(path, template.replaceAll('{{name}}', name).replaceAll('{{version}}', version))
    }
    const rel = relative(process.cwd(), dir)
    const where = rel === '' ? '.' : rel.startsWith('..') ? dir : rel
    this.log(`created ${Object.keys(FILES).join(', ')} in ${where}`)
    this.log('')
    this.log('next:')
    if (where !== '.') this.log(`  cd ${where}`)
    this.log('  raptor agent --plugin handlers/greeter.js          # in one terminal')
    this.log(`  raptor publish -c app.greetings -t greeting -p '{"name":"world"}'   # in another`)
    this.log(
      '  npm install                                        # optional: pin raptorbus and zod in the project',
    )
    return {dir, files: Object.keys(FILES)}
  }
}

/** A valid npm package name from a directory name. */
function sanitize(name: string): string {
  const clean = name
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[._-]+/, '')
  return clean === '' ? 'raptor-project' : clean.slice(0, 214)
}
