import { CloseCode } from './constants.js'

/**
 * A violation found by the protocol core: carries a stable `code`
 * (`WS_ERR_*`) and the close code the connection fails with
 * (RFC 6455 §7.1.7 "Fail the WebSocket Connection"). Where `ws` fails for
 * the same cause, the code is `ws`'s (its lib/receiver.js): code that
 * matches on `err.code` works with both.
 */
export class ProtocolError extends Error {
  /** Why the connection failed, a stable `WS_ERR_*` string such as `WS_ERR_INVALID_UTF8`. */
  readonly code: string
  /** The close code the server sent (RFC 6455 §7.4.1), such as 1002, 1007, 1009 or 1011. */
  readonly closeCode: number

  constructor (code: string, closeCode: number, message: string) {
    super(message)
    this.name = 'ProtocolError'
    this.code = code
    this.closeCode = closeCode
  }
}

/** 1002: the peer broke a framing or sequencing rule (RFC 6455 §7.4.1). */
export function protocolError (code: string, message: string): ProtocolError {
  return new ProtocolError(code, CloseCode.ProtocolError, message)
}

/** 1007: text or a close reason that is not UTF-8 (RFC 6455 §8.1). */
export function invalidUtf8 (message: string): ProtocolError {
  return new ProtocolError('WS_ERR_INVALID_UTF8', CloseCode.InvalidPayloadData, message)
}

/** 1009: a message over `maxPayload` (RFC 6455 §7.4.1, §10.4). */
export function messageTooBig (limit: number): ProtocolError {
  return new ProtocolError('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', CloseCode.MessageTooBig,
    `message exceeds maxPayload of ${limit} bytes`)
}
