/**
 * The TLS certificate of the examples' HTTPS/HTTP/2 mode: the PEM files named
 * by TLS_CERT and TLS_KEY, or a self-signed certificate for localhost and
 * 127.0.0.1 made by the openssl CLI (valid 30 days, made anew at each start).
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export function certificateFromEnv (): { cert: Buffer, key: Buffer } {
  if (process.env.TLS_CERT !== undefined && process.env.TLS_KEY !== undefined) {
    return { cert: readFileSync(process.env.TLS_CERT), key: readFileSync(process.env.TLS_KEY) }
  }
  const dir = mkdtempSync(join(tmpdir(), 'example-tls-'))
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')],
    { stdio: 'ignore' })
    return { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
