// Copies the dashboard's static files (HTML, JS, CSS: served as they are, not compiled) next to the
// compiled gateway. `node scripts/copy-dashboard.js [dest]` (default dist/gateway/dashboard).
import {cpSync} from 'node:fs'

cpSync('src/gateway/dashboard', process.argv[2] ?? 'dist/gateway/dashboard', {recursive: true})
