/** Payloads and memory figures shared by the test directories. */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/** Deterministic pseudo-random bytes (xorshift32; a seed of 0 counts as 1), so a failure can be replayed. */
export function pseudoRandomBytes (length: number, seed = 0x9e3779b9): Buffer {
  const out = Buffer.allocUnsafe(length)
  let x = seed >>> 0 || 1
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

let gcFunction: (() => void) | null = null

/** A full garbage collection (V8's gc(), exposed at run time since tap does not pass --expose-gc). */
export function collectGarbage (): void {
  if (gcFunction === null) {
    setFlagsFromString('--expose-gc')
    gcFunction = runInNewContext('gc') as () => void
  }
  gcFunction()
}
