/**
 * Prometheus relabelling (`metric_relabel_configs`, Prometheus `model/relabel`): the actions `replace`
 * (default), `keep`, `drop`, `keepequal`, `dropequal`, `hashmod`, `labelmap`, `labeldrop`, `labelkeep`,
 * `lowercase`, `uppercase`, with Prometheus' defaults (separator `;`, regex `(.*)` anchored at both ends,
 * replacement `$1`), its validation rules, and Go's `Regexp.Expand` template syntax (`$1`, `${1}`,
 * `$name`, `${name}`, `$$`). Patterns are Go RE2, translated by host/goregexp.ts.
 *
 * The label set is a plain record that includes `__name__`; an empty value means "absent", as in
 * Prometheus' label builder.
 */
import { createHash } from 'node:crypto';
import { subexpNames, translateGoRegExp } from '../host/goregexp.ts';
import { isValidLabelName } from './parse.ts';

export type RelabelAction = 'replace' | 'keep' | 'drop' | 'keepequal' | 'dropequal' | 'hashmod' | 'labelmap' | 'labeldrop' | 'labelkeep' | 'lowercase' | 'uppercase';

const ACTIONS: readonly RelabelAction[] = ['replace', 'keep', 'drop', 'keepequal', 'dropequal', 'hashmod', 'labelmap', 'labeldrop', 'labelkeep', 'lowercase', 'uppercase'];

const DEFAULT_REGEX = '(.*)';
const DEFAULT_SEPARATOR = ';';
const DEFAULT_REPLACEMENT = '$1';
const RELABEL_TARGET = /^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$/;

/** A compiled anchored regex with its group names (Go semantics). */
export class AnchoredRegex {
  readonly source: string;
  readonly re: RegExp;
  readonly names: readonly string[];
  constructor(pattern: string) {
    this.source = pattern;
    const t = translateGoRegExp(pattern);
    this.re = new RegExp(`^(?:${t.source})$`, t.flags);
    this.names = subexpNames(pattern);
  }
  match(s: string): RegExpExecArray | null {
    return this.re.exec(s);
  }
}

export interface RelabelConfig {
  readonly sourceLabels: readonly string[];
  readonly separator: string;
  readonly regex: AnchoredRegex;
  readonly modulus: number;
  readonly targetLabel: string;
  readonly replacement: string;
  readonly action: RelabelAction;
}

/**
 * Go `Regexp.Expand` of `template` with the groups of `m` (`names[i]` the name of group i).
 */
export function expandTemplate(template: string, m: RegExpExecArray, names: readonly string[]): string {
  let out = '';
  let i = 0;
  while (i < template.length) {
    const d = template.indexOf('$', i);
    if (d < 0) {
      out += template.slice(i);
      break;
    }
    out += template.slice(i, d);
    if (template[d + 1] === '$') {
      out += '$';
      i = d + 2;
      continue;
    }
    let j = d + 1;
    let brace = false;
    if (template[j] === '{') {
      brace = true;
      j++;
    }
    const start = j;
    while (j < template.length && /[\p{L}\p{N}_]/u.test(template[j] as string)) j++;
    const name = template.slice(start, j);
    if (name === '' || (brace && template[j] !== '}')) {
      out += '$';
      i = d + 1;
      continue;
    }
    if (brace) j++;
    i = j;
    if (/^\d+$/.test(name)) {
      const n = Number(name);
      if (n < m.length) out += m[n] ?? '';
      continue;
    }
    for (let g = 1; g < names.length; g++) {
      if (names[g] === name && m[g] !== undefined) {
        out += m[g];
        break;
      }
    }
  }
  return out;
}

/** Reads one relabel rule (a YAML mapping) with Prometheus' defaults and validation; throws with the reason. */
export function parseRelabelConfig(raw: Readonly<Record<string, unknown>>): RelabelConfig {
  const str = (key: string, def: string): string => {
    const v = raw[key];
    if (v === undefined || v === null) return def;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
    throw new Error(`${key} must be a string`);
  };
  const actionText = str('action', 'replace').toLowerCase();
  if (!(ACTIONS as readonly string[]).includes(actionText)) throw new Error(`unknown relabel action ${JSON.stringify(actionText)}`);
  const action = actionText as RelabelAction;
  const src = raw.source_labels;
  let sourceLabels: string[] = [];
  if (src !== undefined && src !== null) {
    if (!Array.isArray(src)) throw new Error('source_labels must be a list');
    sourceLabels = src.map((s) => String(s));
  }
  const regexText = str('regex', DEFAULT_REGEX);
  let regex: AnchoredRegex;
  try {
    regex = new AnchoredRegex(regexText);
  } catch (err) {
    throw new Error(`invalid regex ${JSON.stringify(regexText)}: ${(err as Error).message}`);
  }
  const modulusRaw = raw.modulus;
  const modulus = modulusRaw === undefined || modulusRaw === null ? 0 : Number(modulusRaw);
  if (!Number.isInteger(modulus) || modulus < 0) throw new Error('modulus must be a non-negative integer');
  const targetLabel = str('target_label', '');
  const replacement = str('replacement', DEFAULT_REPLACEMENT);
  const separator = str('separator', DEFAULT_SEPARATOR);
  if (modulus === 0 && action === 'hashmod') throw new Error('relabel configuration for hashmod requires non-zero modulus');
  if (['replace', 'hashmod', 'lowercase', 'uppercase', 'keepequal', 'dropequal'].includes(action) && targetLabel === '') {
    throw new Error(`relabel configuration for ${action} action requires 'target_label' value`);
  }
  if (action === 'replace' && !targetLabel.includes('$') && !isValidLabelName(targetLabel)) throw new Error(`${JSON.stringify(targetLabel)} is invalid 'target_label' for replace action`);
  if (action === 'replace' && targetLabel.includes('$') && !RELABEL_TARGET.test(targetLabel)) throw new Error(`${JSON.stringify(targetLabel)} is invalid 'target_label' for replace action`);
  if (['lowercase', 'uppercase', 'keepequal', 'dropequal', 'hashmod'].includes(action) && !isValidLabelName(targetLabel)) throw new Error(`${JSON.stringify(targetLabel)} is invalid 'target_label' for ${action} action`);
  if (['lowercase', 'uppercase', 'keepequal', 'dropequal'].includes(action) && replacement !== DEFAULT_REPLACEMENT) throw new Error(`'replacement' can not be set for ${action} action`);
  if (action === 'labelmap' && !RELABEL_TARGET.test(replacement)) throw new Error(`${JSON.stringify(replacement)} is invalid 'replacement' for labelmap action`);
  if ((action === 'keepequal' || action === 'dropequal') && (regexText !== DEFAULT_REGEX || modulus !== 0 || separator !== DEFAULT_SEPARATOR)) {
    throw new Error(`${action} action requires only 'source_labels' and 'target_label', and no other fields`);
  }
  if ((action === 'labeldrop' || action === 'labelkeep') && (sourceLabels.length > 0 || targetLabel !== '' || modulus !== 0 || separator !== DEFAULT_SEPARATOR || replacement !== DEFAULT_REPLACEMENT)) {
    throw new Error(`${action} action requires only 'regex', and no other fields`);
  }
  return { sourceLabels, separator, regex, modulus, targetLabel, replacement, action };
}

function setLabel(lbs: Record<string, string>, name: string, value: string): void {
  if (value === '') delete lbs[name];
  else lbs[name] = value;
}

/** md5 of the value, last 8 bytes big-endian, modulo `mod` (Prometheus hashmod). */
function hashMod(value: string, mod: number): string {
  const digest = createHash('md5').update(value).digest();
  return (digest.readBigUInt64BE(8) % BigInt(mod)).toString();
}

/** Applies one rule to `lbs` in place; false = the series is dropped. */
export function relabelOne(cfg: RelabelConfig, lbs: Record<string, string>): boolean {
  const val = cfg.sourceLabels.map((n) => lbs[n] ?? '').join(cfg.separator);
  switch (cfg.action) {
    case 'drop':
      return cfg.regex.match(val) === null;
    case 'keep':
      return cfg.regex.match(val) !== null;
    case 'dropequal':
      return (lbs[cfg.targetLabel] ?? '') !== val;
    case 'keepequal':
      return (lbs[cfg.targetLabel] ?? '') === val;
    case 'replace': {
      if (val === '' && cfg.regex.source === DEFAULT_REGEX && !cfg.targetLabel.includes('$') && !cfg.replacement.includes('$')) {
        setLabel(lbs, cfg.targetLabel, cfg.replacement);
        return true;
      }
      const m = cfg.regex.match(val);
      if (!m) return true;
      const target = expandTemplate(cfg.targetLabel, m, cfg.regex.names);
      if (!isValidLabelName(target)) return true;
      setLabel(lbs, target, expandTemplate(cfg.replacement, m, cfg.regex.names));
      return true;
    }
    case 'lowercase':
      setLabel(lbs, cfg.targetLabel, val.toLowerCase());
      return true;
    case 'uppercase':
      setLabel(lbs, cfg.targetLabel, val.toUpperCase());
      return true;
    case 'hashmod':
      setLabel(lbs, cfg.targetLabel, hashMod(val, cfg.modulus));
      return true;
    case 'labelmap':
      for (const [name, value] of Object.entries(lbs)) {
        const m = cfg.regex.match(name);
        if (m) setLabel(lbs, expandTemplate(cfg.replacement, m, cfg.regex.names), value);
      }
      return true;
    case 'labeldrop':
      for (const name of Object.keys(lbs)) if (cfg.regex.match(name)) delete lbs[name];
      return true;
    case 'labelkeep':
      for (const name of Object.keys(lbs)) if (!cfg.regex.match(name)) delete lbs[name];
      return true;
  }
}

/** Applies the rules in order to a copy of `lbs`; undefined when dropped. */
export function relabel(lbs: Readonly<Record<string, string>>, cfgs: readonly RelabelConfig[]): Record<string, string> | undefined {
  const out = Object.assign(Object.create(null) as Record<string, string>, lbs);
  for (const k of Object.keys(out)) if (out[k] === '') delete out[k];
  for (const cfg of cfgs) if (!relabelOne(cfg, out)) return undefined;
  return out;
}
