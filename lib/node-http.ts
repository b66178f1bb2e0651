/**
 * Node's `http` module, taken with `process.getBuiltinModule()` instead of an
 * ESM import. On Node 22 and later, importing `node:http` as ESM builds its
 * namespace by reading every export, and its `WebSocket`, `CloseEvent` and
 * `MessageEvent` getters load Node's bundled undici: 2.2-2.7 MB more live
 * heap, which every major garbage collection marks again (with large
 * messages, the ArrayBuffers of each message drive a major collection every
 * few hundred messages). Type-only imports of `node:http` cost nothing.
 */
export const http = process.getBuiltinModule('node:http')
