/**
 * schemas/README.md lists every place a new span field must be added ("Adding a field to the span");
 * this keeps the list true against the newest span schema: the places exist and name the fields, and
 * no file that names every span field is missing from the list.
 */
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SchemaRegistry } from '../../services/common/avro/index.ts';
import { SPAN_FIELDS } from '../../services/discovery/fields.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const NAMES = ['every field', 'schema order', 'discovery fields'] as const;

interface Place {
  path: string;
  names: (typeof NAMES)[number];
}

/** The rows of the README's table: the place's path and what it must name. */
function places(): Place[] {
  const readme = readFileSync(join(ROOT, 'schemas/README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Adding a field to the span')) ?? '';
  return section.split('\n').filter((line) => line.startsWith('| `')).map((line) => {
    const cells = line.split('|').map((c) => c.trim());
    return { path: (cells[1] ?? '').replaceAll('`', ''), names: cells[3] as Place['names'] };
  });
}

interface FieldSchema {
  name: string;
  type: string | { type: string };
}

const latest = SchemaRegistry.load().get('SpanBatch');
const spanFields = (JSON.parse(readFileSync(latest.file, 'utf8')) as { fields: [{ type: { items: { fields: FieldSchema[] } } }] }).fields[0].type.items.fields;
const fieldNames = spanFields.map((f) => f.name);

/** The file a place names (the schema row names the newest version). */
function fileOf(place: Place): string {
  return join(ROOT, place.path.replace('<N>', String(latest.version)));
}

/** The fields of `fields` that `text` does not name as a word. */
function unnamed(text: string, fields: readonly string[]): string[] {
  return fields.filter((f) => !new RegExp(`\\b${f}\\b`).test(text));
}

test('the README lists the places, each with what it must name', (t) => {
  const list = places();
  t.true(list.length >= 10, list.map((p) => p.path).join(', '));
  for (const p of list) t.true((NAMES as readonly string[]).includes(p.names), `${p.path}: ${p.names}`);
  t.is(fileOf(list.find((p) => p.path.startsWith('schemas/span.')) as Place), latest.file, 'the schema row names the newest span schema');
});

test('every place exists and names the span fields it must', (t) => {
  for (const p of places()) {
    let text: string;
    try {
      text = readFileSync(fileOf(p), 'utf8');
    } catch {
      t.fail(`${p.path} does not exist`);
      continue;
    }
    if (p.names === 'every field') t.deepEqual(unnamed(text, fieldNames), [], `${p.path} names every span field`);
    if (p.names === 'discovery fields') t.deepEqual(unnamed(text, Object.keys(SPAN_FIELDS)), [], `${p.path} names every field discovery reads`);
  }
});

test('the fields discovery reads are span fields, with the Avro types it reads them as', (t) => {
  for (const [name, type] of Object.entries(SPAN_FIELDS)) {
    const field = spanFields.find((f) => f.name === name);
    t.truthy(field, `${name} is a field of ${latest.file}`);
    t.is(typeof field?.type === 'string' ? field.type : field?.type.type, type, name);
  }
});

test('every file that names every span field is a listed place', (t) => {
  const listed = new Set(places().map((p) => fileOf(p)));
  const files = ['services', 'bench', 'test/helpers'].flatMap((dir) =>
    readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join(ROOT, dir, f)),
  );
  const missing = files.filter((f) => !listed.has(f) && unnamed(readFileSync(f, 'utf8'), fieldNames).length === 0);
  t.deepEqual(missing.map((f) => f.slice(ROOT.length + 1)), [], 'files naming every span field that schemas/README.md does not list');
});
