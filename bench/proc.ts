/** Linux /proc probes: a process's memory and CPU time, the machine's steal time and description. */
import { readFileSync } from 'node:fs'
import os from 'node:os'

/** USER_HZ: the unit of CPU times in /proc, 100 on every mainstream Linux. */
const TICKS_PER_SECOND = 100

/** Resident set size of process `pid` in KiB (VmRSS of /proc/PID/status), or NaN when unreadable. */
export function readRssKb (pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))
    return match === null ? NaN : Number(match[1])
  } catch {
    return NaN
  }
}

/** CPU seconds (user + system, all threads) process `pid` has used, or NaN when unreadable. */
export function readCpuSeconds (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND
  } catch {
    return NaN
  }
}

/** Ticks of all CPUs together (first line of /proc/stat): in all, idle (iowait included), and stolen by the hypervisor. */
export function readMachineTicks (): { total: number, idle: number, steal: number } {
  try {
    const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]
    // user nice system idle iowait irq softirq steal [guest guest_nice, already counted in user and nice]
    const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number)
    return { total: ticks.reduce((a, b) => a + b, 0), idle: ticks[3] + ticks[4], steal: ticks[7] }
  } catch {
    return { total: NaN, idle: NaN, steal: NaN }
  }
}

/**
 * A line naming the machine, for a README table: CPU model and count, Node
 * version, kernel, and the glibc malloc settings every process of the run
 * inherits (GLIBC_TUNABLES and MALLOC_* variables; "glibc malloc defaults" when none).
 */
export function describeMachine (): string {
  let model = os.cpus()[0]?.model ?? 'unknown CPU'
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'latin1'))
    if (match !== null) model = match[1].trim()
  } catch { /* os.cpus() is enough */ }
  const mhz = os.cpus()[0]?.speed
  return `${model}${mhz !== undefined && mhz > 0 ? ` @ ${mhz} MHz` : ''}, ${os.availableParallelism()} cores; ` +
    `node ${process.version}; ${os.type()} ${os.release()}; ${mallocSettings()}`
}

/** The glibc malloc settings in this process's environment, which the servers and clients it starts inherit. */
function mallocSettings (): string {
  const set = Object.entries(process.env).filter(([name]) => name === 'GLIBC_TUNABLES' || name.startsWith('MALLOC_'))
  return set.length === 0 ? 'glibc malloc defaults' : set.map(([name, value]) => `${name}=${value ?? ''}`).join(' ')
}
