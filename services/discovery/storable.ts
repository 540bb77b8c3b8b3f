/**
 * Text a varchar column accepts (writer.ts writes it, dedupe.ts keys rows by it): cut by code points, as
 * PostgreSQL and the reference's MySQL count characters, never splitting a surrogate pair.
 */
/** The first `max` characters (code points) of `s`: a surrogate pair counts as one and is never split. */
export function cutCodePoints(s: string, max: number): string {
  if (s.length <= max) return s; // UTF-16 units are never fewer than code points
  let i = 0;
  for (let n = 0; n < max && i < s.length; n++) {
    const c = s.charCodeAt(i);
    i += c >= 0xd800 && c <= 0xdbff && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
  }
  return s.slice(0, i);
}

/**
 * Text a varchar column accepts, exactly as the store will hold it: no NUL, at most `max` characters
 * (code points), and no lone surrogate (which UTF-8 cannot carry: the store would hold U+FFFD, and the
 * text would no longer equal the stored key it is looked up by).
 */
export function storable(value: string, max: number): string {
  const clean = cutCodePoints(value.includes('\0') ? value.replaceAll('\0', '') : value, max);
  return clean.isWellFormed() ? clean : clean.toWellFormed();
}
