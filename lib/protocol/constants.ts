/**
 * Wire constants of RFC 6455.
 */

/** The GUID appended to Sec-WebSocket-Key before hashing (RFC 6455 §1.3, §4.2.2). */
export const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** Opcodes (RFC 6455 §5.2, §11.8). 3-7 and 0xB-0xF are reserved. */
export const Opcode = {
  /** 0x0: a continuation frame of a fragmented message (§5.4). */
  Continuation: 0x0,
  /** 0x1: a text frame, UTF-8 (§5.6). */
  Text: 0x1,
  /** 0x2: a binary frame (§5.6). */
  Binary: 0x2,
  /** 0x8: a close frame (§5.5.1). */
  Close: 0x8,
  /** 0x9: a ping (§5.5.2). */
  Ping: 0x9,
  /** 0xA: a pong (§5.5.3). */
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
  /** 1000: the purpose of the connection has been fulfilled. */
  NormalClosure: 1000,
  /** 1001: an endpoint is going away: a server shutting down (`app.close()`), a page navigated away, `idleTimeout`. */
  GoingAway: 1001,
  /** 1002: a protocol error, such as an unmasked client frame. */
  ProtocolError: 1002,
  /** 1003: a type of data the endpoint cannot accept, such as binary on a `messages: 'json'` route. */
  UnsupportedData: 1003,
  /** 1005: reported, never sent: the close frame had no code. */
  NoStatusReceived: 1005,
  /** 1006: reported, never sent: the connection ended without a close frame. */
  AbnormalClosure: 1006,
  /** 1007: data inconsistent with the message's type, such as text that is not UTF-8 (§8.1). */
  InvalidPayloadData: 1007,
  /** 1008: a message that violates the endpoint's policy; here, a send past `maxBackpressure`. */
  PolicyViolation: 1008,
  /** 1009: a message too big to process, over `maxPayload`. */
  MessageTooBig: 1009,
  /** 1010: sent by a client: the server did not negotiate an extension it needs. */
  MandatoryExtension: 1010,
  /** 1011: an unexpected condition on the server, such as a handler that threw. */
  InternalError: 1011,
  /** 1012: the service is restarting (IANA registry). */
  ServiceRestart: 1012,
  /** 1013: try again later, a temporary condition (IANA registry). */
  TryAgainLater: 1013,
  /** 1014: a gateway or proxy got an invalid response from the upstream server (IANA registry). */
  BadGateway: 1014,
  /** 1015: reported, never sent: the TLS handshake failed. */
  TLSHandshake: 1015
} as const
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode]

/** Largest payload of a control frame, in bytes (RFC 6455 §5.5). */
export const MAX_CONTROL_PAYLOAD = 125
