import type { FastifyRequest, FastifySchemaValidationError } from 'fastify'
import { bounded, FastifyWebSocketError } from '../errors.js'
import { CloseCode } from '../protocol/constants.js'
import { ProtocolError } from '../protocol/errors.js'

/**
 * One message, as the async iterator yields it and `onMessage` hooks see it.
 * `data`: the payload as a Buffer (text as its UTF-8 bytes), or on a route
 * with `messages: 'json'` the parsed, validated value. `isBinary`: whether
 * it came as a binary message (opcode 0x2, RFC 6455 §5.6).
 */
export interface WebSocketMessage<Data = Buffer> {
  /** The payload: a Buffer (text as its UTF-8 bytes), or the parsed value on a `messages: 'json'` route; a hook may replace it. */
  data: Data
  /** `true` for a binary message (opcode 0x2), `false` for text (opcode 0x1); RFC 6455 §5.6. */
  isBinary: boolean
}

/**
 * A per-message hook over the socket type `S`: the shape of MessageHook
 * (lib/socket/websocket.ts), which this module cannot name without
 * importing the socket that imports it.
 */
export type SocketMessageHook<S> = (message: WebSocketMessage<unknown>, socket: S, request: FastifyRequest) =>
  void | boolean | Promise<void | boolean>

/**
 * What a route does with an incoming message. `'buffer'` (the default):
 * listeners get the payload as a Buffer. `'json'`: a text message is parsed
 * as JSON and, with `schema.message`, validated; a binary one is refused
 * with 1003 (Unsupported Data, RFC 6455 §7.4.1).
 */
export type MessageFormat = 'buffer' | 'json'

/**
 * What happens to a message that is not JSON, does not match
 * `schema.message`, or is binary on a `'json'` route. `'close'` (the
 * default): the connection fails with 1007 (1003 for binary), logged
 * through `request.log` at info. `'emit'`: the socket emits `invalid` with
 * the error, the message is dropped and the connection stays open.
 */
export type InvalidMessageAction = 'close' | 'emit'

/**
 * A message a JSON route refused: `code` is `WS_ERR_INVALID_JSON` (not
 * JSON, 1007), `WS_ERR_INVALID_MESSAGE` (fails `schema.message`, 1007) or
 * `WS_ERR_UNSUPPORTED_DATA` (binary, 1003); `closeCode` the close code
 * (sent unless `invalidMessages: 'emit'`); `data` the payload as received;
 * `validation` the validator's errors (Ajv's by default) for a schema failure.
 */
export class MessageValidationError extends ProtocolError {
  /** The refused message's payload as received, before parsing. */
  readonly data: Buffer
  /** The validator's errors (Ajv's `{ instancePath, message, ... }` by default) when `schema.message` refused it; `undefined` for bad JSON or a binary message. */
  readonly validation: FastifySchemaValidationError[] | undefined

  constructor (code: string, closeCode: number, message: string, data: Buffer, validation?: FastifySchemaValidationError[]) {
    super(code, closeCode, message)
    this.name = 'MessageValidationError'
    this.data = data
    this.validation = validation
  }
}

/**
 * What `sendJSON()` throws, sending nothing, when its value fails the route's
 * `schema.send`: code `FST_WS_INVALID_SEND`; `value` the value given;
 * `validation` the validator's errors (Ajv's by default).
 */
export class SendValidationError extends FastifyWebSocketError {
  /** The value given to `sendJSON()`, not sent. */
  readonly value: unknown
  /** The validator's errors (Ajv's `{ instancePath, message, ... }` by default). */
  readonly validation: FastifySchemaValidationError[]

  constructor (message: string, value: unknown, validation: FastifySchemaValidationError[]) {
    super('FST_WS_INVALID_SEND', message)
    this.name = 'SendValidationError'
    this.value = value
    this.validation = validation
  }
}

/**
 * A validation function as Fastify's validator compilers return it
 * (`FastifyValidationResult`); Ajv's has a `schemaEnv` and takes the parent
 * of the value, so that it may replace a root value (coerceTypes).
 */
export type Validate = ((data: unknown, context?: { parentData: object, parentDataProperty: string }) => unknown) &
  { errors?: FastifySchemaValidationError[] | null, schemaEnv?: unknown }

/** What a pipeline step gives: the message to deliver, or null when it was dropped or refused. */
export type Outcome = WebSocketMessage<unknown> | null

/** What `MessagePipeline` needs of the socket. */
export interface PipelineSocket {
  /** Handles a refused message as `invalidMessages` says. */
  refuse (error: MessageValidationError): void
}

/**
 * The steps a message goes through before the listeners, in this order:
 * parse (JSON), validate (`schema.message`, compiled by the route's
 * validator compiler), hooks (plugin's, then route's). One per connection;
 * none when the route has no step, so that path costs nothing.
 */
export class MessagePipeline<S extends PipelineSocket> {
  /** `invalidMessages: 'emit'`: a refused message is emitted as `invalid` instead of failing the connection. */
  readonly emitInvalid: boolean
  private readonly json: boolean
  private readonly validate: Validate | null
  private readonly hooks: Array<SocketMessageHook<S>>
  private readonly request: FastifyRequest

  constructor (json: boolean, emitInvalid: boolean, validate: Validate | null, hooks: Array<SocketMessageHook<S>>, request: FastifyRequest) {
    this.emitInvalid = emitInvalid
    this.json = json
    this.validate = validate
    this.hooks = hooks
    this.request = request
  }

  /** Runs the steps; a promise when a validator or a hook returned one. Throws (or rejects) what a hook throws. */
  run (socket: S, data: Buffer, isBinary: boolean): Outcome | Promise<Outcome> {
    const message: WebSocketMessage<unknown> = { data, isBinary }
    if (this.json) {
      if (isBinary) {
        return refused(socket, new MessageValidationError('WS_ERR_UNSUPPORTED_DATA', CloseCode.UnsupportedData,
          'binary message on a JSON route', data))
      }
      try {
        message.data = JSON.parse(data.toString())
      } catch (error) {
        return refused(socket, new MessageValidationError('WS_ERR_INVALID_JSON', CloseCode.InvalidPayloadData,
          `message is not JSON: ${bounded((error as Error).message)}`, data))
      }
    }
    const validate = this.validate
    if (validate === null) return this.runHooks(socket, message, 0)
    const result = validate.schemaEnv === undefined
      ? validate(message.data)
      : validate(message.data, { parentData: message, parentDataProperty: 'data' })
    if (isThenable(result)) {
      // An async validator (Ajv's $async) resolves to the data or rejects with its errors.
      return Promise.resolve(result).then(
        (value) => value === false ? refused(socket, schemaError(data, validate.errors)) : this.runHooks(socket, message, 0),
        (error: { errors?: FastifySchemaValidationError[] }) => refused(socket, schemaError(data, error.errors)))
    }
    if (result === false) return refused(socket, schemaError(data, validate.errors))
    if (isObject(result)) {
      // Fastify's contract for other compilers: { error } or { value }.
      if (result.error !== undefined && result.error !== null) return refused(socket, schemaError(data, toErrors(result.error)))
      if ('value' in result) message.data = result.value
    }
    return this.runHooks(socket, message, 0)
  }

  private runHooks (socket: S, message: WebSocketMessage<unknown>, from: number): Outcome | Promise<Outcome> {
    const hooks = this.hooks
    for (let i = from; i < hooks.length; i++) {
      const result = hooks[i](message, socket, this.request)
      if (result === false) return null
      if (isThenable(result)) {
        return Promise.resolve(result).then((value) => value === false ? null : this.runHooks(socket, message, i + 1))
      }
    }
    return message
  }
}

function refused (socket: PipelineSocket, error: MessageValidationError): null {
  socket.refuse(error)
  return null
}

/** A schema failure, its message naming the first error as Fastify's 400 does ("/name must be string"). */
function schemaError (data: Buffer, errors: FastifySchemaValidationError[] | null | undefined): MessageValidationError {
  return new MessageValidationError('WS_ERR_INVALID_MESSAGE', CloseCode.InvalidPayloadData,
    `message does not match the schema: ${firstError(errors)}`, data, errors ?? undefined)
}

/** The first error, its path and message cut for a log line: a JSON key is the client's to choose, and the path carries it. */
function firstError (errors: FastifySchemaValidationError[] | null | undefined): string {
  const first = errors?.[0]
  return first === undefined ? 'invalid' : `${first.instancePath === '' ? '/' : bounded(first.instancePath)} ${bounded(first.message ?? first.keyword)}`
}

/**
 * The route's `schema.send` compiled as `schema.message` is (see
 * createPipeline), or null when it has none or `validateSend` is false.
 */
export function compileSendSchema (schema: unknown, request: FastifyRequest): Validate | null {
  return schema === undefined ? null : request.compileValidationSchema(schema as Record<string, unknown>) as Validate
}

/** Throws a SendValidationError when `value` fails `validate`, a synchronous validator. */
export function checkSend (validate: Validate, value: unknown): void {
  const result = validate(value)
  let errors: FastifySchemaValidationError[] | undefined
  if (result === false) errors = validate.errors ?? []
  else if (isThenable(result)) throw new FastifyWebSocketError('FST_WS_INVALID_SEND', 'schema.send must be validated synchronously; its validator returned a promise')
  else if (isObject(result) && result.error !== undefined && result.error !== null) errors = toErrors(result.error)
  if (errors !== undefined) throw new SendValidationError(`sent value does not match schema.send: ${firstError(errors)}`, value, errors)
}

function toErrors (error: unknown): FastifySchemaValidationError[] {
  if (Array.isArray(error)) return error as FastifySchemaValidationError[]
  return [{ keyword: 'error', instancePath: '', schemaPath: '', params: {}, message: (error as Error).message }]
}

function isObject (value: unknown): value is { error?: unknown, value?: unknown } {
  return typeof value === 'object' && value !== null
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return isObject(value) && typeof (value as PromiseLike<unknown>).then === 'function'
}

/** A route's resolved message options (lib/options.ts). */
export interface PipelineOptions<S> {
  messages: MessageFormat
  invalidMessages: InvalidMessageAction
  /** The plugin's hooks, then the route's. */
  onMessage: Array<SocketMessageHook<S>>
  /** The route's `schema.message`; undefined when none. */
  messageSchema: unknown
}

/**
 * The pipeline of a route's connection, or null when it has no step.
 * `schema`: the route's `schema.message`, compiled with
 * `request.compileValidationSchema()`, Fastify's own public API: the route's
 * `validatorCompiler`, else the instance's (`setValidatorCompiler`), else
 * the default Ajv with the app's `ajv` options and the schemas added with
 * `addSchema()`; Fastify caches it per route. Throws the compiler's error.
 */
export function createPipeline<S extends PipelineSocket> (options: PipelineOptions<S>, request: FastifyRequest): MessagePipeline<S> | null {
  const json = options.messages === 'json'
  if (!json && options.onMessage.length === 0) return null
  const schema = options.messageSchema
  const validate = schema === undefined ? null : request.compileValidationSchema(schema as Record<string, unknown>) as Validate
  return new MessagePipeline(json, options.invalidMessages === 'emit', validate, options.onMessage, request)
}

/** `socket.messages()` while another iterator of that socket is active. */
export function iteratorActiveError (): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_ITERATOR_ACTIVE', 'this socket already has an active message iterator: a message goes to one consumer')
}
