/**
 * An open-addressing hash table keyed by 64-bit ids (two 32-bit hash lanes of a span or trace id), for
 * the pairing window. It allocates nothing per entry: keys and stamps live in typed arrays, values in one
 * array. The window's maps of strings made ~30 % of what the discovery process promoted to V8's old
 * generation (id strings, entries, and Map tables growing and shrinking as windows fill and empty).
 *
 * Entries are not deleted one by one: each carries a stamp (the serial of the window bucket that last
 * touched it) and counts as gone once the window's oldest live bucket is younger (`stamp < minStamp`).
 * Dead slots are reused by inserts and dropped when the table is rebuilt, which happens when occupied
 * slots reach half the capacity; the rebuild keeps only live entries and sizes the table to them, so it
 * shrinks as well as grows.
 */

/** The stamp of an empty slot; stamps of entries are bucket serials, which start at 1. */
const EMPTY = 0;
/** The stamp of an entry taken out before its bucket is dropped (dead for every `minStamp`). */
const TOMBSTONE = -1;
const MIN_CAPACITY = 256;

/** A slot index from the two lanes (murmur3's finaliser over both). */
function slotHash(a: number, b: number): number {
  let h = a ^ Math.imul(b, 0x9e3779b1);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

export class IdTable<T> {
  #mask = 0;
  #keyA = new Int32Array(0);
  #keyB = new Int32Array(0);
  #stamps = new Float64Array(0);
  #values: (T | undefined)[] = [];
  /** Slots not EMPTY (live, dead or tombstones). */
  #occupied = 0;

  constructor(capacity = MIN_CAPACITY) {
    this.#allocate(capacity);
  }

  #allocate(capacity: number): void {
    let cap = MIN_CAPACITY;
    while (cap < capacity) cap *= 2;
    this.#mask = cap - 1;
    this.#keyA = new Int32Array(cap);
    this.#keyB = new Int32Array(cap);
    this.#stamps = new Float64Array(cap);
    this.#values = new Array<T | undefined>(cap).fill(undefined);
    this.#occupied = 0;
  }

  /** Slots in the table (for tests and metrics). */
  capacity(): number {
    return this.#mask + 1;
  }

  /** The slot of the live entry with this id, or -1. */
  find(a: number, b: number, minStamp: number): number {
    const mask = this.#mask;
    const keyA = this.#keyA;
    const keyB = this.#keyB;
    const stamps = this.#stamps;
    for (let i = slotHash(a, b) & mask; ; i = (i + 1) & mask) {
      const stamp = stamps[i] as number;
      if (stamp === EMPTY) return -1;
      // An id has at most one slot, so a dead match means the id is not in the table.
      if (keyA[i] === a && keyB[i] === b && stamp !== TOMBSTONE) return stamp >= minStamp ? i : -1;
    }
  }

  /** The live value with this id. */
  get(a: number, b: number, minStamp: number): T | undefined {
    const i = this.find(a, b, minStamp);
    return i < 0 ? undefined : this.#values[i];
  }

  /** Inserts the id, or updates its value and stamp if present (dead or alive). */
  set(a: number, b: number, value: T, stamp: number, minStamp: number): void {
    if (this.#occupied * 2 >= this.#mask + 1) this.#rebuild(minStamp);
    const mask = this.#mask;
    const keyA = this.#keyA;
    const keyB = this.#keyB;
    const stamps = this.#stamps;
    let reuse = -1;
    let i = slotHash(a, b) & mask;
    for (; ; i = (i + 1) & mask) {
      const s = stamps[i] as number;
      if (s === EMPTY) break;
      if (keyA[i] === a && keyB[i] === b && s !== TOMBSTONE) {
        stamps[i] = stamp;
        this.#values[i] = value;
        return;
      }
      if (reuse < 0 && s < minStamp) reuse = i;
    }
    if (reuse >= 0) i = reuse;
    else this.#occupied++;
    keyA[i] = a;
    keyB[i] = b;
    stamps[i] = stamp;
    this.#values[i] = value;
  }

  valueAt(slot: number): T {
    return this.#values[slot] as T;
  }

  setValueAt(slot: number, value: T): void {
    this.#values[slot] = value;
  }

  stampAt(slot: number): number {
    return this.#stamps[slot] as number;
  }

  setStampAt(slot: number, stamp: number): void {
    this.#stamps[slot] = stamp;
  }

  /** Takes an entry out now (its slot stays occupied until reused or rebuilt). */
  remove(slot: number): void {
    this.#stamps[slot] = TOMBSTONE;
    this.#values[slot] = undefined;
  }

  /** Calls `fn` with the value of every entry stamped exactly `stamp`, then removes them. */
  drain(stamp: number, fn: (value: T) => void): void {
    const stamps = this.#stamps;
    for (let i = 0; i <= this.#mask; i++) {
      if (stamps[i] !== stamp) continue;
      const value = this.#values[i] as T;
      this.remove(i);
      fn(value);
    }
  }

  clear(): void {
    this.#allocate(MIN_CAPACITY);
  }

  /**
   * Re-inserts the live entries into a table sized for them: four slots per entry, but at least half the
   * current size (windows fill and empty all the time; halving at most per rebuild keeps a table that
   * just emptied from being regrown step by step).
   */
  #rebuild(minStamp: number): void {
    const keyA = this.#keyA;
    const keyB = this.#keyB;
    const stamps = this.#stamps;
    const values = this.#values;
    let live = 0;
    for (let i = 0; i < stamps.length; i++) if ((stamps[i] as number) >= minStamp) live++;
    this.#allocate(Math.max(live * 4, stamps.length / 2));
    for (let i = 0; i < stamps.length; i++) {
      const stamp = stamps[i] as number;
      if (stamp < minStamp) continue;
      const mask = this.#mask;
      let j = slotHash(keyA[i] as number, keyB[i] as number) & mask;
      while (this.#stamps[j] !== EMPTY) j = (j + 1) & mask;
      this.#keyA[j] = keyA[i] as number;
      this.#keyB[j] = keyB[i] as number;
      this.#stamps[j] = stamp;
      this.#values[j] = values[i];
      this.#occupied++;
    }
  }
}

/**
 * A bounded map keyed by two 32-bit lanes, with approximate LRU eviction in two generations, on an
 * {@link IdTable}: entries are stamped with the generation that last touched them; a lookup that finds an
 * entry of the old generation moves it to the young one; when the young generation holds half the bound,
 * it becomes the old one and the old one dies at once (its slots are reused or dropped by the next
 * rebuild). At most `maxEntries` live entries; nothing is allocated per entry or per lookup.
 */
export class BoundedIdMap<T> {
  readonly #half: number;
  readonly #table = new IdTable<T>();
  /** The young generation's stamp; the old one is `#gen - 1` (stamps start at 1). */
  #gen = 2;
  #young = 0;

  constructor(maxEntries: number) {
    this.#half = Math.max(1, Math.floor(maxEntries / 2));
  }

  get(a: number, b: number): T | undefined {
    const table = this.#table;
    const slot = table.find(a, b, this.#gen - 1);
    if (slot < 0) return undefined;
    if (table.stampAt(slot) !== this.#gen) {
      this.#makeRoom();
      table.setStampAt(slot, this.#gen);
      this.#young++;
    }
    return table.valueAt(slot);
  }

  set(a: number, b: number, value: T): void {
    const table = this.#table;
    const slot = table.find(a, b, this.#gen - 1);
    if (slot >= 0 && table.stampAt(slot) === this.#gen) {
      table.setValueAt(slot, value);
      return;
    }
    this.#makeRoom();
    table.set(a, b, value, this.#gen, this.#gen - 1);
    this.#young++;
  }

  /** Forgets every entry (no allocation: both generations die). */
  clear(): void {
    this.#gen += 2;
    this.#young = 0;
  }

  #makeRoom(): void {
    if (this.#young < this.#half) return;
    this.#gen++;
    this.#young = 0;
  }
}
