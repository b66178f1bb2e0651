/**
 * Wire constants of RFC 6455.
 */

/** The GUID appended to Sec-WebSocket-Key before hashing (RFC 6455 §1.3, §4.2.2). */
export const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** Opcodes (RFC 6455 §5.2, §11.8). 3-7 and 0xB-0xF are reserved. */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa
} as const
export type Opcode = (typeof Opcode)[keyof typeof Opcode]

/**
 * Close codes (RFC 6455 §7.4.1, IANA "WebSocket Close Code Number Registry").
 * 1005, 1006 and 1015 are never sent on the wire (§7.4.1); this library reports
 * 1005 for a close frame without a code and 1006 for a connection that ended
 * without a close frame.
 */
export const CloseCode = {
  NormalClosure: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  UnsupportedData: 1003,
  NoStatusReceived: 1005,
  AbnormalClosure: 1006,
  InvalidPayloadData: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  MandatoryExtension: 1010,
  InternalError: 1011,
  ServiceRestart: 1012,
  TryAgainLater: 1013,
  BadGateway: 1014,
  TLSHandshake: 1015
} as const
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode]

/** Largest payload of a control frame, in bytes (RFC 6455 §5.5). */
export const MAX_CONTROL_PAYLOAD = 125
