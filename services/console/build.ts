/**
 * Builds the front end (services/console/web) into one folder with esbuild: `index.html` and hashed
 * files under `assets/` (the app's entry, lazily loaded chunks for the graph and chart libraries, CSS).
 * `npm run build` and `npm ci` (postinstall) run it; the console runs {@link ensureBuilt} at start, which
 * rebuilds only when the sources changed since the last build (a hash of them is kept in `build.json`).
 */
import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile, rename, rm, writeFile, mkdir } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WEB_DIR = resolve(import.meta.dirname, 'web');
/** Where the bundle goes by default (git-ignored). */
export const DEFAULT_DIST = resolve(import.meta.dirname, 'dist');
const STAMP = 'build.json';

export interface BuildResult {
  dir: string;
  /** Files written, relative to `dir`. */
  files: string[];
  bytes: number;
  sourceHash: string;
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out.sort();
}

/** A hash of every source file of the front end and of this build script. */
export async function sourceHash(): Promise<string> {
  const h = createHash('sha256');
  for (const f of [...(await walk(WEB_DIR)), fileURLToPath(import.meta.url)]) {
    h.update(relative(WEB_DIR, f)).update('\0').update(await readFile(f)).update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

/** Builds into `outDir` (replaced as a whole, so a running console never sees half a bundle). */
export async function buildConsole(outDir: string = DEFAULT_DIST): Promise<BuildResult> {
  const { build } = await import('esbuild');
  const hash = await sourceHash();
  const tmp = `${outDir}.tmp-${randomUUID()}`;
  await rm(tmp, { recursive: true, force: true });
  const result = await build({
    entryPoints: { app: join(WEB_DIR, 'main.tsx') },
    outdir: tmp,
    bundle: true,
    splitting: true,
    format: 'esm',
    minify: true,
    metafile: true,
    target: ['chrome111', 'firefox115', 'safari16.4'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    entryNames: 'assets/[name]-[hash]',
    chunkNames: 'assets/[name]-[hash]',
    assetNames: 'assets/[name]-[hash]',
    legalComments: 'none',
    logLevel: 'silent',
    tsconfig: join(WEB_DIR, 'tsconfig.json'),
  });
  const outputs = Object.entries(result.metafile.outputs);
  const entry = outputs.find(([, o]) => o.entryPoint !== undefined && o.entryPoint.endsWith('main.tsx'));
  if (!entry) throw new Error('esbuild produced no entry bundle');
  const [entryFile, entryMeta] = entry;
  const rel = (p: string): string => relative(tmp, resolve(p)).split('\\').join('/');
  const css = entryMeta.cssBundle ? `<link rel="stylesheet" href="/${rel(entryMeta.cssBundle)}">` : '';
  const template = await readFile(join(WEB_DIR, 'index.html'), 'utf8');
  const html = template.replace('<!-- assets -->', `${css}<script type="module" src="/${rel(entryFile)}"></script>`);
  await writeFile(join(tmp, 'index.html'), html);
  await writeFile(join(tmp, STAMP), JSON.stringify({ sourceHash: hash, builtAt: new Date().toISOString() }));
  const files = (await walk(tmp)).map((f) => relative(tmp, f));
  let bytes = 0;
  for (const f of files) bytes += (await readFile(join(tmp, f))).length;
  // Swap the folders: the old one aside, the new one in, the old one away.
  const old = `${outDir}.old-${randomUUID()}`;
  await rename(outDir, old).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
  try {
    await rename(tmp, outDir);
  } catch (err) {
    // Another process put its build in place between our two renames: keep theirs.
    if ((err as NodeJS.ErrnoException).code !== 'ENOTEMPTY' && (err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    await rm(tmp, { recursive: true, force: true });
  }
  await rm(old, { recursive: true, force: true });
  return { dir: outDir, files, bytes, sourceHash: hash };
}

/** The source hash the bundle in `dir` was built from, if there is one. */
export async function builtHash(dir: string): Promise<string | undefined> {
  try {
    return (JSON.parse(await readFile(join(dir, STAMP), 'utf8')) as { sourceHash?: string }).sourceHash;
  } catch {
    return undefined;
  }
}

const building = new Map<string, Promise<boolean>>();

/** Builds `dir` unless it holds a bundle of the current sources; says whether it built. One build per folder at a time in a process. */
export function ensureBuilt(dir: string = DEFAULT_DIST): Promise<boolean> {
  let pending = building.get(dir);
  if (!pending) {
    pending = (async () => {
      if ((await builtHash(dir)) === (await sourceHash())) return false;
      await mkdir(resolve(dir, '..'), { recursive: true });
      await buildConsole(dir);
      return true;
    })().finally(() => building.delete(dir));
    building.set(dir, pending);
  }
  return pending;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const started = performance.now();
  buildConsole(process.argv[2] ? resolve(process.argv[2]) : DEFAULT_DIST).then(
    (r) => process.stdout.write(`console: built ${r.files.length} files, ${(r.bytes / 1024).toFixed(0)} KiB, into ${relative(process.cwd(), r.dir) || '.'} in ${((performance.now() - started) / 1000).toFixed(2)} s\n`),
    (err: unknown) => {
      process.stderr.write(`console build failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
