// Loads the built package through its own name ("exports" in package.json):
// run `npm run build` first (`npm test` does).
import { test } from 'tap'
import { createRequire } from 'node:module'

test("the package's exports: import() and require() of 'fastify-rfc6455' both give the plugin", async (t) => {
  const imported = await import('fastify-rfc6455')
  const required = createRequire(import.meta.url)('fastify-rfc6455') as typeof imported

  for (const [how, module] of [['import()', imported], ['require()', required]] as const) {
    await t.test(how, async (t) => {
      t.equal(typeof module.default, 'function', 'the default export is the plugin function')
      t.equal(module.fastifyRfc6455, module.default, 'also exported by name')
      t.equal(typeof module.WebSocket, 'function', 'WebSocket is a class')
      t.equal(module.WebSocket.OPEN, 1)
      t.equal(module.CloseCode.NormalClosure, 1000)
      t.equal(module.CloseCode.GoingAway, 1001)
      t.equal(module.Opcode.Text, 1)
      t.equal(typeof module.FastifyWebSocketError, 'function')
    })
  }

  t.equal(required.default, imported.default, 'require() and import() give the same module instance')
  t.match(import.meta.resolve('fastify-rfc6455'), /\/dist\/lib\/index\.js$/, 'resolved through "exports" to dist')
})
