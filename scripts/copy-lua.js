// Copies the Lua scripts next to the compiled library: they are read at run time, not compiled.
// `node scripts/copy-lua.js [dest]` (default dist/bus/lua; the bench build uses .bench-tmp/src/bus/lua).
import {cpSync} from 'node:fs'

cpSync('src/bus/lua', process.argv[2] ?? 'dist/bus/lua', {recursive: true})
