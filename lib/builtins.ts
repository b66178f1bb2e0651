/**
 * Node modules taken with `process.getBuiltinModule()` instead of an ESM
 * import. On Node 22 and later, importing a built-in as ESM builds its
 * namespace by reading every export, and some exports are getters that load
 * or build more the first time they are read. Live heap added by the ESM
 * import over `getBuiltinModule()` (after a full GC, Node 22 / 24 / 26):
 * - `node:http`: 2.2-2.7 MB; its `WebSocket`, `CloseEvent` and
 *   `MessageEvent` load Node's bundled undici;
 * - `node:util`: 0.43 / 0.49 / 0.46 MB; its getters load `worker_threads`,
 *   `parseArgs` and the diff algorithm;
 * - `node:tls`: 0.20 / 0.19 / 0.19 MB; `rootCertificates` builds the
 *   array of Node's root certificates.
 * Every major garbage collection marks that heap again: with large messages,
 * each message's ArrayBuffers start one every few hundred messages. Type-only
 * imports cost nothing and stay imports.
 */

/** `node:http`: its STATUS_CODES, IncomingMessage and ServerResponse. */
export const http = process.getBuiltinModule('node:http')

/** `node:util`'s `inspect`, for values quoted in error messages. */
export const { inspect } = process.getBuiltinModule('node:util')

/** `node:tls`'s `TLSSocket`, to tell a TLS socket from a plain one. */
export const { TLSSocket } = process.getBuiltinModule('node:tls')
