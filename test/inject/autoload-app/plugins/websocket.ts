/** The plugin, loaded by @fastify/autoload from plugins/; fastify-plugin's wrapper makes it reach every route. */
export { default } from '../../../../lib/index.js'
