/** The longest delay Node's timers take (about 24.8 days); a longer one fires after 1 ms instead. */
const MAX_DELAY = 2 ** 31 - 1

/** One key's deadline, in ms since the epoch, and its place in the heap. */
interface Entry<Key> {
  readonly key: Key
  at: number
  index: number
}

/**
 * Deadlines of many keys (the sockets of one server, for `closeAt()`) on one
 * timer: a binary min-heap of deadlines, in ms since the epoch (`Date.now()`),
 * and one unref'd `setTimeout` for the earliest. At its deadline a key
 * leaves the heap and `expire(key)` runs. A key has at most one deadline:
 * setting another replaces it. Adding, replacing and removing a key cost
 * O(log n). The timer is re-armed only when the earliest deadline comes
 * sooner than the one it waits for; when the earliest goes later (its key
 * removed or moved), the timer fires early, finds nothing due and re-arms.
 * A delay past what `setTimeout` takes (2^31-1 ms) is waited in steps.
 */
export class ExpiryQueue<Key> {
  private readonly heap: Array<Entry<Key>> = []
  private readonly entries = new Map<Key, Entry<Key>>()
  private readonly expire: (key: Key) => void
  private timer: NodeJS.Timeout | null = null
  /** The deadline the timer was armed for. */
  private armedFor = Infinity

  constructor (expire: (key: Key) => void) {
    this.expire = expire
  }

  /** @internal Keys with a deadline. */
  get size (): number {
    return this.heap.length
  }

  /** Sets `key`'s deadline to `at` (ms since the epoch), replacing its previous one; a past one expires on the next timer tick. */
  set (key: Key, at: number): void {
    const entry = this.entries.get(key)
    if (entry === undefined) {
      const added: Entry<Key> = { key, at, index: this.heap.length }
      this.entries.set(key, added)
      this.heap.push(added)
      this.up(added)
    } else {
      const earlier = at < entry.at
      entry.at = at
      if (earlier) this.up(entry)
      else this.down(entry)
    }
    this.arm()
  }

  /** Removes `key`'s deadline; false when it had none. */
  delete (key: Key): boolean {
    const entry = this.entries.get(key)
    if (entry === undefined) return false
    this.entries.delete(key)
    this.removeAt(entry.index)
    if (this.heap.length === 0) this.disarm()
    return true
  }

  private removeAt (index: number): void {
    const last = this.heap.pop() as Entry<Key>
    if (index === this.heap.length) return
    this.heap[index] = last
    last.index = index
    this.up(last)
    this.down(last)
  }

  /** Arms the timer for the earliest deadline unless it is armed for one at least as early. */
  private arm (): void {
    const earliest = this.heap[0].at
    if (this.timer !== null && this.armedFor <= earliest) return
    if (this.timer !== null) clearTimeout(this.timer)
    this.armedFor = earliest
    const delay = Math.min(Math.max(earliest - Date.now(), 0), MAX_DELAY)
    this.timer = setTimeout(onTimer, delay, this).unref()
  }

  private disarm (): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.armedFor = Infinity
  }

  /** @internal The timer fired: expires every key whose deadline has come, then re-arms for the next. */
  fire (): void {
    this.timer = null
    this.armedFor = Infinity
    const now = Date.now()
    while (this.heap.length > 0 && this.heap[0].at <= now) {
      const entry = this.heap[0]
      this.entries.delete(entry.key)
      this.removeAt(0)
      this.expire(entry.key)
    }
    if (this.heap.length > 0) this.arm()
  }

  private up (entry: Entry<Key>): void {
    const heap = this.heap
    let index = entry.index
    while (index > 0) {
      const parentIndex = (index - 1) >> 1
      const parent = heap[parentIndex]
      if (parent.at <= entry.at) break
      heap[index] = parent
      parent.index = index
      index = parentIndex
    }
    heap[index] = entry
    entry.index = index
  }

  private down (entry: Entry<Key>): void {
    const heap = this.heap
    const length = heap.length
    let index = entry.index
    for (;;) {
      let child = 2 * index + 1
      if (child >= length) break
      if (child + 1 < length && heap[child + 1].at < heap[child].at) child++
      if (heap[child].at >= entry.at) break
      heap[index] = heap[child]
      heap[index].index = index
      index = child
    }
    heap[index] = entry
    entry.index = index
  }
}

function onTimer (queue: { fire (): void }): void {
  queue.fire()
}
