/**
 * Whether a span matches a policy's conditions, by the job's rules (README: How it works): every group is
 * evaluated, a group stops at its first condition that does not hold, a key `a.b` reads field `b` of the
 * span's object `a` (split on the first dot only), a missing field never holds (not even for `neq`),
 * `eq`/`neq`/`reg`/`nreg` read the value as text (the method's case is ignored to choose text, but only the
 * lower-case names run), the other methods as a double compared with the largest (`gt`, `gte`) or smallest
 * (`lt`, `lte`) value. Whatever would throw in the job throws {@link JavaError} here.
 */
import { gsonNumber, gsonText, isDocObject, type DocObject, type DocValue } from './document.ts';
import { javaExtreme, JavaError, javaParseDouble, javaRegex } from './java.ts';
import type { Condition, SamplingPolicy } from './policy.ts';

const TEXT_METHODS = /^(eq|neq|reg|nreg)$/i;

/** Evaluates one policy's conditions; caches its compiled regexes. */
export class Matcher {
  readonly #groups: SamplingPolicy['groups'];
  readonly #regexes = new Map<string, RegExp | JavaError>();

  constructor(policy: Pick<SamplingPolicy, 'groups'>) {
    this.#groups = policy.groups;
  }

  /** Whether there is anything to evaluate (without conditions no span ever matches, and none is read). */
  get empty(): boolean {
    return this.#groups.length === 0;
  }

  /** Whether any group holds for the span; `span()` is called only if there are conditions. */
  matches(span: () => DocObject): boolean {
    if (this.#groups.length === 0) return false;
    const doc = span();
    let any = false;
    for (const group of this.#groups) {
      let all = true;
      for (const c of group) {
        if (!this.#holds(doc, c)) {
          all = false;
          break;
        }
      }
      if (all) any = true;
    }
    return any;
  }

  #holds(doc: DocObject, c: Condition): boolean {
    if (c.key === null) throw new JavaError('condition without a key');
    const dot = c.key.indexOf('.');
    let value: DocValue | undefined = doc.get(dot < 0 ? c.key : c.key.slice(0, dot));
    if (value !== undefined && dot >= 0) {
      if (!isDocObject(value)) throw new JavaError(`${c.key.slice(0, dot)} is not an object`);
      value = value.get(c.key.slice(dot + 1));
    }
    if (value === undefined) return false;
    return c.method !== null && TEXT_METHODS.test(c.method) ? this.#text(gsonText(value), c) : this.#number(gsonNumber(value), c);
  }

  #text(actual: string, c: Condition): boolean {
    const values = c.value;
    const method = c.method;
    if (method !== 'eq' && method !== 'neq' && method !== 'reg' && method !== 'nreg') throw new JavaError(`unsupported method ${String(method)}`);
    if (values === null) throw new JavaError('condition without values');
    switch (method) {
      case 'eq':
        return values.includes(actual);
      case 'neq':
        return !values.includes(actual);
      case 'reg':
        return this.#anyFullMatch(actual, values);
      case 'nreg':
        return !this.#anyFullMatch(actual, values);
    }
  }

  #anyFullMatch(actual: string, patterns: readonly (string | null)[]): boolean {
    for (const p of patterns) {
      if (p === null) throw new JavaError('null regex');
      let re = this.#regexes.get(p);
      if (re === undefined) {
        try {
          re = javaRegex(p);
        } catch (err) {
          re = err instanceof JavaError ? err : new JavaError(String(err));
        }
        this.#regexes.set(p, re);
      }
      if (re instanceof JavaError) throw re;
      if (re.test(actual)) return true;
    }
    return false;
  }

  #number(actual: number, c: Condition): boolean {
    if (c.value === null) throw new JavaError('condition without values');
    const bounds = c.value.map((v) => {
      if (v === null) throw new JavaError('null value');
      return javaParseDouble(v);
    });
    switch (c.method) {
      case 'gt':
        return actual > javaExtreme(bounds, 'max');
      case 'gte':
        return actual >= javaExtreme(bounds, 'max');
      case 'lt':
        return actual < javaExtreme(bounds, 'min');
      case 'lte':
        return actual <= javaExtreme(bounds, 'min');
      default:
        throw new JavaError(`unsupported method ${String(c.method)}`);
    }
  }
}
