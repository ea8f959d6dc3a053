// Copies the Lua scripts next to the compiled library: they are read at run time, not compiled.
import {cpSync} from 'node:fs'

cpSync('src/bus/lua', 'dist/bus/lua', {recursive: true})
