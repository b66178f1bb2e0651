import { createRequire } from 'node:module'

/**
 * ws masks with Node's own native `http.websocketUnmask` where Node has it
 * (Node 26), else loads bufferutil if it can and silently falls back to
 * JavaScript masking otherwise; this checks that ws's buffer-util took one
 * of the two native ones, and throws if not.
 */
export function checkBufferutil (): void {
  const require = createRequire(import.meta.url)
  const wsDir = require.resolve('ws').replace(/index\.js$/, '')
  const wsRequire = createRequire(wsDir)
  const native = wsRequire('bufferutil') as { mask: unknown }
  const fallback = wsRequire('bufferutil/fallback') as { mask: unknown }
  const bufferUtil = wsRequire(`${wsDir}lib/buffer-util.js`) as { unmask: () => void }
  const source = bufferUtil.unmask.toString()
  if (source.includes('websocketUnmask')) return
  if (native.mask === fallback.mask || !source.includes('bufferUtil')) {
    throw new Error('ws is not using bufferutil\'s native masking: run npm install (bufferutil is a devDependency)')
  }
}
