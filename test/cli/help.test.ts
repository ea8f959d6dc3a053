import {describe, expect, it} from 'vitest'

import {runCli} from '../helpers/index.js'
import {runInPty, screenText} from '../helpers/pty.js'

describe('help conventions', () => {
  it('raptor -h, raptor help, --help list the commands and topics (exit 0)', async () => {
    const [short, word, long] = await Promise.all([runCli(['-h']), runCli(['help']), runCli(['--help'])])
    for (const r of [short, word, long]) {
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toMatch(/USAGE\n {2}\$ raptor \[COMMAND\]/)
      expect(r.stdout).toMatch(/^ {2}publish +Publish events to a channel\./m)
      expect(r.stdout).toMatch(/^ {2}dlq +Inspect and recover dead-lettered events\./m)
      expect(r.stdout).toMatch(/^ {2}context +Named connection settings/m)
    }
  })

  it('raptor publish -h and raptor help publish show the command help with its flags', async () => {
    const [short, word] = await Promise.all([runCli(['publish', '-h']), runCli(['help', 'publish'])])
    for (const r of [short, word]) {
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toMatch(/^USAGE\n {2}\$ raptor publish/m)
      expect(r.stdout).toMatch(/-c, --channel=<value>/)
      expect(r.stdout).toMatch(/GLOBAL FLAGS/)
      expect(r.stdout).toMatch(/--context=<value>/)
    }
    const dlq = await runCli(['dlq', 'list', '-h'])
    expect(dlq.code).toBe(0)
    expect(dlq.stdout).toMatch(/\$ raptor dlq list/)
  })

  it('raptor version and --version print the version', async () => {
    const [word, flag, short] = await Promise.all([
      runCli(['version']),
      runCli(['--version']),
      runCli(['-v']),
    ])
    for (const r of [word, flag, short]) {
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toMatch(/^raptorbus\/\d+\.\d+\.\d+ \S+ node-v\d+/)
    }
  })

  it('a mistyped command off a terminal names the nearest in the spaced form, exit 2', async () => {
    const r = await runCli(['dlq', 'lst'])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toBe(
      "Error: 'dlq lst' is not a raptor command: did you mean 'raptor dlq list'? Run 'raptor help dlq' for the list.\n",
    )
    expect(r.stderr).not.toContain('dlq:')
    const far = await runCli(['zzzzqq'])
    expect(far.code).toBe(2)
    expect(far.stderr).toBe("Error: 'zzzzqq' is not a raptor command: Run 'raptor help' for the list.\n")
  })

  it('on a terminal it asks "Did you mean dlq list?"; no → exit 2', async () => {
    const r = await runInPty(['dlq', 'lst'], {cols: 80, input: 'n\r'})
    const screen = screenText(r.stdout)
    expect(screen).toContain('dlq lst is not a raptor command')
    expect(screen).toContain('Did you mean dlq list?')
    expect(screen).not.toContain('dlq:l')
    expect(r.code).toBe(2)
  })

  it('shell completion: autocomplete prints the setup for bash and zsh', async () => {
    const [bash, zsh, script] = await Promise.all([
      runCli(['autocomplete', 'bash']),
      runCli(['autocomplete', 'zsh']),
      runCli(['autocomplete', 'script', 'bash']),
    ])
    expect(bash.code, bash.stderr).toBe(0)
    expect(bash.stdout).toMatch(/raptor autocomplete/)
    expect(zsh.code, zsh.stderr).toBe(0)
    expect(script.code, script.stderr).toBe(0)
    expect(script.stdout).toMatch(/autocomplete/)
  })
})
