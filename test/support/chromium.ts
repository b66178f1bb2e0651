/**
 * Debian's Chromium, driven headless by playwright-core (which downloads no
 * browser of its own here). Tests that need it are skipped, not failed, where
 * /usr/bin/chromium is missing.
 */
import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'

/** Milliseconds any one wait in a page may take before the test fails. */
export const PAGE_WAIT_MS = 5000

/** This machine has no network: keep Chromium from trying to reach one. */
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

/** tap's `skip` option for a test that needs Chromium: false where it is installed, else the reason. */
export const skipWithoutChromium: false | string =
  existsSync(CHROMIUM) ? false : `Chromium not installed (${CHROMIUM}): apt-get install chromium`

/** Launches Chromium headless; the caller closes it at teardown. */
export function launchChromium (): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 15_000 })
}
