/**
 * Preloaded into every server (`--import`, with `--expose-gc`); none of them
 * has signal handlers of its own.
 *   SIGTERM  exits normally, so that `--cpu-prof` gets to write its profile
 *   SIGUSR2  runs a full garbage collection, then prints one line on stdout:
 *            MEMORY_MARKER and process.memoryUsage() as JSON, for the
 *            idle-memory probe
 */
import { MEMORY_MARKER } from './types.js'

process.once('SIGTERM', () => process.exit(0))
process.on('SIGUSR2', () => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc !== undefined) gc()
  process.stdout.write(MEMORY_MARKER + JSON.stringify(process.memoryUsage()) + '\n')
})
