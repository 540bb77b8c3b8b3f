/**
 * One sample line of the Prometheus text format or OpenMetrics, parsed the way bkmonitorbeat parses the
 * output of script tasks and the bodies metricbeat scrapes (reference tasks/prom_event.go): line by line,
 * accepting what either Prometheus' OpenMetrics parser or its text-format parser accepts.
 *
 * Accepted (the union of `model/textparse` OpenMetrics and `expfmt` text format):
 * - `name`, `name{}`, `name{a="b",c="d"}`, with blanks around the braces, names and `=`, a trailing comma,
 *   blanks instead of commas between labels (the text parser's leniency), and UTF-8 quoted names
 *   (`{"my.metric","label.name"="v"}`, the quoted metric name anywhere in the braces);
 * - label values with the escapes `\\`, `\"`, `\n` (any other backslash pair is kept as written);
 * - values as Go's `strconv.ParseFloat` reads them (decimal, exponent, `Inf`/`+Inf`/`-Inf`/`infinity`,
 *   `NaN`, case-insensitive) but not hex floats or underscores (both parsers reject those);
 * - an optional timestamp: an integer (its unit is detected later, see timestamp.ts) or an OpenMetrics
 *   float in seconds;
 * - an optional OpenMetrics exemplar `# {labels} value [timestamp]`.
 *
 * Rejected: no metric name, bad names, unquoted or unterminated label values, duplicate label names, the
 * reserved label `__name__`, a bad value or timestamp, anything after the timestamp that is not an exemplar.
 * Comment lines (`#...`) and blank lines are the caller's to skip.
 */

/** A timestamp as written: `value` is the number; `seconds` says it was an OpenMetrics float (seconds). */
export interface RawTimestamp {
  readonly value: number;
  readonly seconds: boolean;
}

export interface Exemplar {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  /** Exemplar timestamps are OpenMetrics seconds. */
  readonly timestamp?: RawTimestamp;
}

export interface Sample {
  readonly name: string;
  /** Labels in the order written (a null-prototype object: `__proto__` is a valid label name). */
  readonly labels: Record<string, string>;
  readonly value: number;
  readonly timestamp?: RawTimestamp;
  readonly exemplar?: Exemplar;
}

export class ExpositionError extends Error {
  constructor(message: string, line: string) {
    super(`${message} while parsing: ${JSON.stringify(line.length > 200 ? `${line.slice(0, 200)}...` : line)}`);
    this.name = 'ExpositionError';
  }
}

const SPACE = 32;
const TAB = 9;
const QUOTE = 34;
const BACKSLASH = 92;
const COMMA = 44;
const EQUAL = 61;
const LBRACE = 123;
const RBRACE = 125;
const HASH = 35;

function isBlank(c: number): boolean {
  return c === SPACE || c === TAB || c === 13;
}

function isNameStart(c: number, colon: boolean): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || (colon && c === 58);
}

function isNameChar(c: number, colon: boolean): boolean {
  return isNameStart(c, colon) || (c >= 48 && c <= 57);
}

const FLOAT = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])$/;
const INTEGER = /^[+-]?\d+$/;

/** A float as Go's ParseFloat reads it, without hex floats and underscores; NaN for anything else. */
export function parseGoFloat(token: string): number {
  if (!FLOAT.test(token)) return Number.NaN;
  const c = token.charCodeAt(token[0] === '+' || token[0] === '-' ? 1 : 0);
  if (c === 105 || c === 73) return token[0] === '-' ? -Infinity : Infinity;
  if (c === 110 || c === 78) return Number.NaN;
  return Number(token);
}

function isNaNToken(token: string): boolean {
  return /^[+-]?nan$/i.test(token);
}

class Cursor {
  pos = 0;
  readonly s: string;
  constructor(s: string) {
    this.s = s;
  }
  get done(): boolean {
    return this.pos >= this.s.length;
  }
  peek(): number {
    return this.s.charCodeAt(this.pos);
  }
  skipBlanks(): number {
    const start = this.pos;
    while (this.pos < this.s.length && isBlank(this.s.charCodeAt(this.pos))) this.pos++;
    return this.pos - start;
  }
  name(colon: boolean): string {
    const start = this.pos;
    if (this.done || !isNameStart(this.peek(), colon)) return '';
    this.pos++;
    while (this.pos < this.s.length && isNameChar(this.s.charCodeAt(this.pos), colon)) this.pos++;
    return this.s.slice(start, this.pos);
  }
  /** A double-quoted string at the cursor (escapes resolved), or undefined when unterminated. */
  quoted(): string | undefined {
    this.pos++; // opening quote
    let out = '';
    let chunk = this.pos;
    while (this.pos < this.s.length) {
      const c = this.s.charCodeAt(this.pos);
      if (c === QUOTE) {
        out += this.s.slice(chunk, this.pos);
        this.pos++;
        return out;
      }
      if (c === BACKSLASH) {
        if (this.pos + 1 >= this.s.length) return undefined;
        out += this.s.slice(chunk, this.pos);
        const n = this.s.charCodeAt(this.pos + 1);
        if (n === BACKSLASH) out += '\\';
        else if (n === QUOTE) out += '"';
        else if (n === 110) out += '\n';
        else out += this.s.slice(this.pos, this.pos + 2);
        this.pos += 2;
        chunk = this.pos;
        continue;
      }
      this.pos++;
    }
    return undefined;
  }
  token(): string {
    const start = this.pos;
    while (this.pos < this.s.length && !isBlank(this.s.charCodeAt(this.pos))) this.pos++;
    return this.s.slice(start, this.pos);
  }
}

/**
 * Reads a `{...}` label block at the cursor into `labels`. Returns the quoted metric name found in it
 * (UTF-8 form), '' if none. `allowName`: whether a bare quoted string may be the metric name.
 */
function readLabels(cur: Cursor, line: string, labels: Record<string, string>, allowName: boolean): string {
  cur.pos++; // {
  let metricName = '';
  let first = true;
  for (;;) {
    cur.skipBlanks();
    if (cur.done) throw new ExpositionError('unterminated label set', line);
    let c = cur.peek();
    if (c === RBRACE) {
      cur.pos++;
      return metricName;
    }
    if (c === COMMA) {
      if (first) throw new ExpositionError('expected label name, got ","', line);
      cur.pos++;
      cur.skipBlanks();
      if (cur.done) throw new ExpositionError('unterminated label set', line);
      c = cur.peek();
      if (c === RBRACE) {
        cur.pos++;
        return metricName;
      }
      if (c === COMMA) throw new ExpositionError('expected label name, got ","', line);
    }
    first = false;
    let labelName: string;
    if (c === QUOTE) {
      const q = cur.quoted();
      if (q === undefined) throw new ExpositionError('unterminated quoted name', line);
      cur.skipBlanks();
      if (cur.done || cur.peek() !== EQUAL) {
        if (!allowName) throw new ExpositionError('expected "=" after quoted label name', line);
        if (metricName !== '') throw new ExpositionError('multiple metric names', line);
        if (q === '') throw new ExpositionError('empty metric name', line);
        metricName = q;
        continue;
      }
      labelName = q;
    } else {
      labelName = cur.name(false);
      if (labelName === '') throw new ExpositionError(`expected label name, got ${JSON.stringify(line[cur.pos] ?? '')}`, line);
      cur.skipBlanks();
      if (cur.done || cur.peek() !== EQUAL) throw new ExpositionError('expected "=" after label name', line);
    }
    if (labelName === '__name__') throw new ExpositionError('label name "__name__" is reserved', line);
    cur.pos++; // =
    cur.skipBlanks();
    if (cur.done || cur.peek() !== QUOTE) throw new ExpositionError('expected label value in double quotes', line);
    const value = cur.quoted();
    if (value === undefined) throw new ExpositionError('unterminated label value', line);
    if (Object.prototype.hasOwnProperty.call(labels, labelName)) throw new ExpositionError(`duplicate label name ${JSON.stringify(labelName)}`, line);
    labels[labelName] = value;
  }
}

function readTimestamp(token: string, line: string, what: string): RawTimestamp {
  if (INTEGER.test(token)) return { value: Number(token), seconds: false };
  const v = parseGoFloat(token);
  if (!Number.isFinite(v)) throw new ExpositionError(isNaNToken(token) || FLOAT.test(token) ? `invalid ${what} ${token}` : `invalid ${what} ${JSON.stringify(token)}`, line);
  return { value: v, seconds: true };
}

/** Parses one sample line (without its newline). Throws {@link ExpositionError}. */
export function parseSampleLine(line: string): Sample {
  const cur = new Cursor(line);
  cur.skipBlanks();
  const labels = Object.create(null) as Record<string, string>;
  let name = '';
  if (!cur.done && cur.peek() !== LBRACE) {
    name = cur.name(true);
    if (name === '') throw new ExpositionError(`invalid metric name at ${JSON.stringify(line[cur.pos] ?? '')}`, line);
    const blanks = cur.skipBlanks();
    if (cur.done) throw new ExpositionError('expected value after metric', line);
    if (cur.peek() !== LBRACE && blanks === 0) throw new ExpositionError(`expected value after metric, got ${JSON.stringify(line[cur.pos])}`, line);
  }
  if (!cur.done && cur.peek() === LBRACE) {
    const quotedName = readLabels(cur, line, labels, name === '');
    if (quotedName !== '') name = quotedName;
    cur.skipBlanks();
  }
  if (name === '') throw new ExpositionError('metric name not set', line);
  if (cur.done) throw new ExpositionError('expected value after metric', line);
  const valueToken = cur.token();
  const value = parseGoFloat(valueToken);
  if (Number.isNaN(value) && !isNaNToken(valueToken)) throw new ExpositionError(`invalid value ${JSON.stringify(valueToken)}`, line);
  cur.skipBlanks();
  let timestamp: RawTimestamp | undefined;
  if (!cur.done && cur.peek() !== HASH) {
    timestamp = readTimestamp(cur.token(), line, 'timestamp');
    cur.skipBlanks();
  }
  let exemplar: Exemplar | undefined;
  if (!cur.done) {
    if (cur.peek() !== HASH) throw new ExpositionError(`unexpected ${JSON.stringify(line.slice(cur.pos))} after the timestamp`, line);
    cur.pos++;
    if (cur.skipBlanks() === 0 || cur.done || cur.peek() !== LBRACE) throw new ExpositionError('expected an exemplar "# {labels} value"', line);
    const exLabels = Object.create(null) as Record<string, string>;
    readLabels(cur, line, exLabels, false);
    cur.skipBlanks();
    if (cur.done) throw new ExpositionError('expected value after exemplar labels', line);
    const exToken = cur.token();
    const exValue = parseGoFloat(exToken);
    if (Number.isNaN(exValue) && !isNaNToken(exToken)) throw new ExpositionError(`invalid exemplar value ${JSON.stringify(exToken)}`, line);
    cur.skipBlanks();
    let exTs: RawTimestamp | undefined;
    if (!cur.done) {
      const t = readTimestamp(cur.token(), line, 'exemplar timestamp');
      exTs = { value: t.value, seconds: true };
      cur.skipBlanks();
      if (!cur.done) throw new ExpositionError(`unexpected ${JSON.stringify(line.slice(cur.pos))} after the exemplar`, line);
    }
    exemplar = exTs ? { labels: exLabels, value: exValue, timestamp: exTs } : { labels: exLabels, value: exValue };
  }
  return { name, labels, value, ...(timestamp ? { timestamp } : {}), ...(exemplar ? { exemplar } : {}) };
}

/** Whether a raw line carries no sample: blank, or a comment / HELP / TYPE / UNIT / EOF line. */
export function isSkippableLine(line: string): boolean {
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (isBlank(c)) continue;
    return c === HASH;
  }
  return true;
}

/** Prometheus' label-name rule (`[a-zA-Z_][a-zA-Z0-9_]*`). */
export function isValidLabelName(s: string): boolean {
  if (s.length === 0 || !isNameStart(s.charCodeAt(0), false)) return false;
  for (let i = 1; i < s.length; i++) if (!isNameChar(s.charCodeAt(i), false)) return false;
  return true;
}
