/**
 * What every test directory with sockets needs: a Fastify app listening on an
 * ephemeral port of 127.0.0.1, closed at teardown, and bounded waits (a bug
 * fails the test instead of hanging it).
 */
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'

/** Upper bound of every wait for a socket event, in milliseconds. */
export const WAIT_MS = 5000

/** The subset of tap's Test the helpers need. */
export interface Teardown {
  teardown (fn: () => unknown): void
}

/** Rejects with `label` when `promise` has not settled within `ms`. */
export async function withTimeout<T> (promise: Promise<T>, label: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${label}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Resolves after `ms` milliseconds. */
export function delay (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Listens on an ephemeral port of 127.0.0.1 (never any other address) and returns the port. */
export async function listen (app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as AddressInfo).port
}

/** The last step of a teardown: closes `app` unless the test closed it, within 10 s. */
export async function closeApp (app: FastifyInstance): Promise<void> {
  if (app.server.listening) await withTimeout(app.close(), 'app.close() at teardown', 10_000)
}
