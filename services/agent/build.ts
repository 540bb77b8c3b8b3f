/**
 * Builds the host agent into one minified CommonJS file, `services/agent/dist/agent.cjs`, with esbuild:
 * what the DaemonSet and the image run (`node --max-semi-space-size=1 --no-opt --no-maglev
 * services/agent/dist/agent.cjs`). `npm run build` and `npm ci` (postinstall) run it; `bench:agent`
 * builds a fresh one before measuring.
 *
 * Why a bundle: the agent runs on every host, so its resident memory is the figure that counts (issue 12:
 * at most 40 MB above an idle Node process). Run from its TypeScript sources it loads ~630 modules
 * through Node's type stripping (a WebAssembly transformer that stays mapped) and keeps every module's
 * source text; one minified script holds the same code in about a third of the text, with one module
 * record instead of hundreds. Tests and `bkstream up` run the sources; test/agent/bundle.test.ts runs the
 * bundle itself.
 *
 * What the bundle changes, and how:
 * - `import.meta.dirname` / `import.meta.url` of each source file (used to find `schemas/`, the package's
 *   version, the example configs) become that file's own directory, computed from where the bundle lies
 *   (the repository layout is kept beside it: the bundle lives in `services/agent/dist/`);
 * - the task types loaded on first use (tasks/index.ts `load('./x.ts')`) become `require('./x.ts')`, which
 *   esbuild bundles as lazily evaluated modules: a type the configuration never uses is never evaluated;
 * - packages that only a rarely used task needs (the Kubernetes client, SNMP, character sets, cron) stay
 *   outside the bundle and are `require`d from node_modules when that task first loads.
 * Every rewrite checks that the text it rewrites is there, so a change of the sources fails the build
 * instead of producing a bundle that breaks at run time.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const AGENT_DIR = resolve(import.meta.dirname);
export const ROOT = resolve(AGENT_DIR, '../..');
/** Where the bundle goes by default (git-ignored). */
export const DEFAULT_BUNDLE = join(AGENT_DIR, 'dist', 'agent.cjs');
/** Node flags the bundle is meant to run with (deploy/k8s/agent.yaml, deploy/Dockerfile, bench/agent.ts). */
export const AGENT_NODE_FLAGS = ['--max-semi-space-size=1', '--no-opt', '--no-maglev'] as const;

/** Packages left outside the bundle: big, and needed only by task types most hosts never run. */
const EXTERNAL = ['@kubernetes/client-node', 'net-snmp', 'iconv-lite', 'croner'];

export interface AgentBuildResult {
  file: string;
  bytes: number;
  /** Source files (ours and packages') in the bundle. */
  inputs: number;
}

/** Replaces `from` in `text`, failing when it is not there (the sources changed under the build). */
function rewrite(text: string, from: RegExp, to: (match: string, ...groups: string[]) => string, file: string, what: string): string {
  let found = false;
  const out = text.replace(from, (...args: unknown[]) => {
    found = true;
    return to(...(args.slice(0, -2) as [string, ...string[]]));
  });
  if (!found) throw new Error(`agent build: ${what} not found in ${relative(ROOT, file)}; update services/agent/build.ts`);
  return out;
}

/** Builds the bundle into `outFile` (default {@link DEFAULT_BUNDLE}; anywhere: the bundle finds the repository from its own path, as built). */
export async function buildAgent(outFile: string = DEFAULT_BUNDLE): Promise<AgentBuildResult> {
  const { build } = await import('esbuild');
  const outDir = dirname(resolve(outFile));
  // The repository root, as the bundle computes it at run time from its own directory.
  const rootFromBundle = relative(outDir, ROOT) || '.';
  await mkdir(outDir, { recursive: true });
  const result = await build({
    entryPoints: [join(AGENT_DIR, 'main.ts')],
    outfile: outFile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    minify: true,
    legalComments: 'none',
    external: EXTERNAL,
    metafile: true,
    logLevel: 'silent',
    banner: { js: `"use strict";const __bkRoot=require("node:path").resolve(__dirname,${JSON.stringify(rootFromBundle)});` },
    plugins: [
      {
        name: 'bkstream-sources',
        setup(b) {
          b.onLoad({ filter: /\.ts$/ }, async (args) => {
            const file = args.path;
            let text = await readFile(file, 'utf8');
            const rel = relative(ROOT, dirname(file)).split('\\').join('/');
            const dirExpr = `(__bkRoot+${JSON.stringify(rel ? `/${rel}` : '')})`;
            if (file === join(AGENT_DIR, 'tasks', 'index.ts')) {
              text = rewrite(text, /const load = createRequire\(import\.meta\.url\);/, () => 'const load = undefined;', file, 'the lazy loader');
              text = rewrite(text, /load\('(\.\/[a-z-]+\.ts)'\)/g, (_m, p: string) => `require('${p}')`, file, 'lazily loaded task modules');
            }
            if (text.includes('import.meta.url')) {
              text = text.replace(/import\.meta\.url/g, `require("node:url").pathToFileURL(${dirExpr}+${JSON.stringify(`/${file.slice(dirname(file).length + 1)}`)}).href`);
            }
            text = text.replace(/import\.meta\.dirname/g, dirExpr);
            text = text.replace(/import\.meta\.filename/g, `(${dirExpr}+${JSON.stringify(`/${file.slice(dirname(file).length + 1)}`)})`);
            return { contents: text, loader: 'ts' };
          });
        },
      },
    ],
  });
  const warnings = result.warnings.filter((w) => w.id !== 'empty-import-meta');
  if (warnings.length > 0) throw new Error(`agent build: ${warnings.map((w) => w.text).join('; ')}`);
  const out = result.metafile?.outputs ?? {};
  const bytes = Object.values(out).reduce((n, o) => n + o.bytes, 0);
  return { file: resolve(outFile), bytes, inputs: Object.keys(result.metafile?.inputs ?? {}).length };
}

// `node services/agent/build.ts [out]`
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const started = Date.now();
  buildAgent(process.argv[2])
    .then((r) => process.stdout.write(`agent bundle: ${relative(process.cwd(), r.file)} (${(r.bytes / 1024).toFixed(0)} KiB from ${r.inputs} files, ${Date.now() - started} ms)\n`))
    .catch((err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    });
}
