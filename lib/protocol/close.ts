import { Buffer, isUtf8 } from 'node:buffer'
import { CloseCode, MAX_CONTROL_PAYLOAD } from './constants.js'
import { invalidUtf8, protocolError, type ProtocolError } from './errors.js'

/** Largest close reason in bytes: 125 minus the 2-byte code (RFC 6455 §5.5, §5.5.1). */
export const MAX_CLOSE_REASON = MAX_CONTROL_PAYLOAD - 2

/**
 * Whether `code` may appear in a close frame on the wire (RFC 6455 §7.4.1,
 * §7.4.2): 1000-1003 and 1007-1014 (the registered codes; 1004 is reserved,
 * 1005, 1006 and 1015 "MUST NOT be set as a status code in a Close control
 * frame"), and 3000-4999 for libraries, frameworks and applications.
 */
export function isValidWireCode (code: number): boolean {
  return (code >= 1000 && code <= 1003) ||
    (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999)
}

export interface ClosePayload {
  /** The status code, or 1005 when the frame had no body (RFC 6455 §7.1.5). */
  code: number
  /** UTF-8 reason, '' when absent (§7.1.6). */
  reason: string
}

/**
 * Parses a received close frame body (RFC 6455 §5.5.1): empty, or a 2-byte
 * big-endian code then a UTF-8 reason. A 1-byte body or a code not valid on
 * the wire is a protocol error (1002); a reason that is not UTF-8 is 1007
 * (§8.1). Returns the error instead of throwing.
 */
export function parseClosePayload (body: Uint8Array): ClosePayload | ProtocolError {
  if (body.length === 0) return { code: CloseCode.NoStatusReceived, reason: '' }
  if (body.length === 1) return protocolError('WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', 'close frame body of 1 byte')
  const code = (body[0] << 8) | body[1]
  if (!isValidWireCode(code)) return protocolError('WS_ERR_INVALID_CLOSE_CODE', `invalid close code ${code}`)
  const reason = body.subarray(2)
  if (!isUtf8(reason)) return invalidUtf8('close reason is not valid UTF-8')
  return { code, reason: Buffer.from(reason.buffer, reason.byteOffset, reason.length).toString('utf8') }
}

/**
 * Serializes a close frame body: nothing for 1005 (no status to send), else
 * the code and the UTF-8 reason. The caller checks the code and the
 * reason's length (at most 123 bytes).
 */
export function encodeClosePayload (code: number, reason: string | Uint8Array = ''): Buffer {
  if (code === CloseCode.NoStatusReceived) return Buffer.alloc(0)
  const reasonBytes = typeof reason === 'string' ? Buffer.from(reason, 'utf8') : reason
  const body = Buffer.allocUnsafe(2 + reasonBytes.length)
  body.writeUInt16BE(code, 0)
  body.set(reasonBytes, 2)
  return body
}
