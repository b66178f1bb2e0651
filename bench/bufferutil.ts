import { createRequire } from 'node:module'

/**
 * ws loads bufferutil if it can and silently falls back to JavaScript
 * masking otherwise; this checks both that the native addon loaded and that
 * ws's own buffer-util took it, and throws if not.
 */
export function checkBufferutil (): void {
  const require = createRequire(import.meta.url)
  const wsDir = require.resolve('ws').replace(/index\.js$/, '')
  const wsRequire = createRequire(wsDir)
  const native = wsRequire('bufferutil') as { mask: unknown }
  const fallback = wsRequire('bufferutil/fallback') as { mask: unknown }
  const bufferUtil = wsRequire(`${wsDir}lib/buffer-util.js`) as { unmask: () => void }
  if (native.mask === fallback.mask || !bufferUtil.unmask.toString().includes('bufferUtil')) {
    throw new Error('ws is not using bufferutil\'s native masking: run npm install (bufferutil is a devDependency)')
  }
}
