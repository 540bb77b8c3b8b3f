/**
 * An open-addressing hash table keyed by ids of up to 64 bits (two 32-bit hash lanes of a span or trace
 * id; the pipeline hands them on as 31-bit lanes), for the pairing window, the shape cache and the pairs
 * memo. It allocates nothing per entry: keys and stamps live in typed arrays, values in one
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
/** Int32s per slot in {@link IdTable}'s one key array: lane a, lane b, stamp (and one unused, for alignment). */
const STRIDE = 4;
const B = 1;
const STAMP = 2;

/** A slot index from the two lanes (murmur3's finaliser over both). */
function slotHash(a: number, b: number): number {
  let h = a ^ Math.imul(b, 0x9e3779b1);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** A values array of `n` undefined entries. */
function emptyValues<T>(n: number): (T | undefined)[] {
  return new Array<T | undefined>(n).fill(undefined);
}

/**
 * The table. A slot's lanes and stamp are side by side in one Int32Array (a probe touches one cache
 * line, not three arrays); values are in a parallel array. Stamps are 32-bit integers.
 */
export class IdTable<T> {
  #mask = 0;
  #slots: Int32Array<ArrayBuffer> = new Int32Array(0);
  #values: (T | undefined)[] = [];
  /** Slots not EMPTY (live, dead or tombstones). */
  #occupied = 0;
  /**
   * The arrays the last rebuild left, kept instead of dropped: a rebuild to their size fills them (tables
   * that grow and shrink between two sizes, as windows do, then allocate nothing).
   */
  #spareSlots: Int32Array<ArrayBuffer> | undefined;
  #spareValues: (T | undefined)[] | undefined;

  constructor(capacity = MIN_CAPACITY) {
    this.#allocate(capacity);
  }

  #allocate(capacity: number): void {
    let cap = MIN_CAPACITY;
    while (cap < capacity) cap *= 2;
    this.#mask = cap - 1;
    this.#slots = new Int32Array(cap * STRIDE);
    this.#values = emptyValues<T>(cap);
    this.#occupied = 0;
  }

  /** Slots in the table (for tests and metrics). */
  capacity(): number {
    return this.#mask + 1;
  }

  /** The slot of the live entry with this id, or -1. */
  find(a: number, b: number, minStamp: number): number {
    const mask = this.#mask;
    const slots = this.#slots;
    for (let i = slotHash(a, b) & mask; ; i = (i + 1) & mask) {
      const at = i * STRIDE;
      const stamp = slots[at + STAMP] as number;
      if (stamp === EMPTY) return -1;
      // An id has at most one slot, so a dead match means the id is not in the table.
      if (slots[at] === a && slots[at + B] === b && stamp !== TOMBSTONE) return stamp >= minStamp ? i : -1;
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
    const slots = this.#slots;
    let reuse = -1;
    let i = slotHash(a, b) & mask;
    for (; ; i = (i + 1) & mask) {
      const at = i * STRIDE;
      const s = slots[at + STAMP] as number;
      if (s === EMPTY) break;
      if (slots[at] === a && slots[at + B] === b && s !== TOMBSTONE) {
        slots[at + STAMP] = stamp;
        this.#values[i] = value;
        return;
      }
      if (reuse < 0 && s < minStamp) reuse = i;
    }
    if (reuse >= 0) i = reuse;
    else this.#occupied++;
    const at = i * STRIDE;
    slots[at] = a;
    slots[at + B] = b;
    slots[at + STAMP] = stamp;
    this.#values[i] = value;
  }

  valueAt(slot: number): T {
    return this.#values[slot] as T;
  }

  setValueAt(slot: number, value: T): void {
    this.#values[slot] = value;
  }

  stampAt(slot: number): number {
    return this.#slots[slot * STRIDE + STAMP] as number;
  }

  setStampAt(slot: number, stamp: number): void {
    this.#slots[slot * STRIDE + STAMP] = stamp;
  }

  /** Takes an entry out now (its slot stays occupied until reused or rebuilt). */
  remove(slot: number): void {
    this.#slots[slot * STRIDE + STAMP] = TOMBSTONE;
    this.#values[slot] = undefined;
  }

  /** Calls `fn` with the value of every entry stamped exactly `stamp`, then removes them. */
  drain(stamp: number, fn: (value: T) => void): void {
    const slots = this.#slots;
    for (let i = 0; i <= this.#mask; i++) {
      if (slots[i * STRIDE + STAMP] !== stamp) continue;
      const value = this.#values[i] as T;
      this.remove(i);
      fn(value);
    }
  }

  clear(): void {
    this.#allocate(MIN_CAPACITY);
    this.#spareSlots = undefined;
    this.#spareValues = undefined;
  }

  /** Empties the table in place, keeping its capacity (nothing is allocated). */
  reset(): void {
    this.#slots.fill(0);
    this.#values.fill(undefined);
    this.#occupied = 0;
  }

  /**
   * Re-inserts the live entries into a table sized for them: four slots per entry, but at least half the
   * current size (windows fill and empty all the time; halving at most per rebuild keeps a table that
   * just emptied from being regrown step by step). A rebuild fills the arrays the previous one left when
   * they have the size it needs (no allocation when a table moves between two sizes).
   */
  #rebuild(minStamp: number): void {
    const slots = this.#slots;
    const values = this.#values;
    const oldCap = this.#mask + 1;
    let live = 0;
    for (let i = 0; i < oldCap; i++) if ((slots[i * STRIDE + STAMP] as number) >= minStamp) live++;
    let cap = MIN_CAPACITY;
    while (cap < Math.max(live * 4, oldCap / 2)) cap *= 2;
    if (this.#spareSlots && this.#spareValues && this.#spareValues.length === cap) {
      this.#mask = cap - 1;
      this.#slots = this.#spareSlots;
      this.#values = this.#spareValues;
      this.#slots.fill(0);
      this.#values.fill(undefined);
      this.#occupied = 0;
    } else {
      this.#allocate(cap);
    }
    const mask = this.#mask;
    const to = this.#slots;
    for (let i = 0; i < oldCap; i++) {
      const from = i * STRIDE;
      const stamp = slots[from + STAMP] as number;
      if (stamp < minStamp) continue;
      const a = slots[from] as number;
      const b = slots[from + B] as number;
      let j = slotHash(a, b) & mask;
      while (to[j * STRIDE + STAMP] !== EMPTY) j = (j + 1) & mask;
      to[j * STRIDE] = a;
      to[j * STRIDE + B] = b;
      to[j * STRIDE + STAMP] = stamp;
      this.#values[j] = values[i];
      this.#occupied++;
    }
    // The old arrays are the spare now (their values are dropped when they are filled again).
    this.#spareSlots = slots;
    this.#spareValues = values;
  }
}

/**
 * A bounded map keyed by two 32-bit lanes, with approximate LRU eviction in two generations: a young and
 * an old {@link IdTable}, each sized so that half the bound fills it less than half. A lookup that finds an entry in
 * the old table moves it to the young one; when the young table holds half the bound, the old one is
 * emptied in place and the two swap (O(size), once per half the bound of inserts). {@link clear} costs
 * nothing whatever the size: each table has an epoch that its live entries carry, and clearing gives both
 * new epochs (the dead slots are reused by inserts). At most `maxEntries` live entries (a moved entry may
 * be counted twice); nothing is allocated per entry or per lookup.
 */
export class BoundedIdMap<T> {
  readonly #half: number;
  #young: IdTable<T>;
  #old: IdTable<T>;
  #epochs = 0;
  #youngEpoch = ++this.#epochs;
  #oldEpoch = ++this.#epochs;
  #youngSize = 0;

  constructor(maxEntries: number) {
    this.#half = Math.max(1, Math.floor(maxEntries / 2));
    // More than twice the slots of the live entries: a table rebuilds at half full, which only entries
    // left dead by a clear can bring about.
    this.#young = new IdTable<T>(2 * this.#half + 1);
    this.#old = new IdTable<T>(2 * this.#half + 1);
  }

  get(a: number, b: number): T | undefined {
    const young = this.#young;
    const slot = young.find(a, b, this.#youngEpoch);
    if (slot >= 0) return young.valueAt(slot);
    const old = this.#old;
    const at = old.find(a, b, this.#oldEpoch);
    if (at < 0) return undefined;
    const value = old.valueAt(at);
    old.remove(at);
    this.#insert(a, b, value);
    return value;
  }

  set(a: number, b: number, value: T): void {
    const young = this.#young;
    const slot = young.find(a, b, this.#youngEpoch);
    if (slot >= 0) young.setValueAt(slot, value);
    else this.#insert(a, b, value);
  }

  /** Forgets every entry (two new epochs: nothing is touched). */
  clear(): void {
    this.#youngEpoch = ++this.#epochs;
    this.#oldEpoch = ++this.#epochs;
    this.#youngSize = 0;
  }

  #insert(a: number, b: number, value: T): void {
    if (this.#youngSize >= this.#half) {
      const old = this.#old;
      old.reset();
      this.#old = this.#young;
      this.#oldEpoch = this.#youngEpoch;
      this.#young = old;
      this.#youngEpoch = ++this.#epochs;
      this.#youngSize = 0;
    }
    // An old copy of the key (if any) stays shadowed by this one until the old table is emptied.
    this.#young.set(a, b, value, this.#youngEpoch, this.#youngEpoch);
    this.#youngSize++;
  }
}
