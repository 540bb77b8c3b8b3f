/**
 * The built front end, served from memory: every file of the bundle folder is read once at start (with
 * a gzip copy for clients that accept it). `index.html` is revalidated on every load (ETag); the hashed
 * files under `assets/` are immutable. Pages carry a Content-Security-Policy that allows only this
 * origin's scripts, styles, images and API calls — the bundle has everything, nothing comes from a CDN.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

/** Headers of every page: nothing outside this origin, no framing, no referrer, no sniffing. */
export const PAGE_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

interface Asset {
  body: Buffer;
  gzip: Buffer | undefined;
  type: string;
  etag: string;
  immutable: boolean;
}

export class Assets {
  readonly #files = new Map<string, Asset>();

  /** Reads every file of `dir`, `index.html` through `page` (settings put in by the server); throws when it has no index.html. */
  async load(dir: string, page: (html: string) => string = (html) => html): Promise<void> {
    const walk = async (d: string): Promise<string[]> => {
      const out: string[] = [];
      for (const e of await readdir(d, { withFileTypes: true })) {
        if (e.isDirectory()) out.push(...(await walk(join(d, e.name))));
        else out.push(join(d, e.name));
      }
      return out;
    };
    this.#files.clear();
    for (const file of await walk(dir)) {
      const path = `/${relative(dir, file).split('\\').join('/')}`;
      if (path === '/build.json') continue;
      const body = path === '/index.html' ? Buffer.from(page(await readFile(file, 'utf8'))) : await readFile(file);
      const type = TYPES[extname(file)] ?? 'application/octet-stream';
      const compressible = /^(text\/|application\/json|image\/svg)/.test(type) && body.length > 1024;
      this.#files.set(path, {
        body,
        gzip: compressible ? gzipSync(body, { level: 9 }) : undefined,
        type,
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
        immutable: path.startsWith('/assets/'),
      });
    }
    if (!this.#files.has('/index.html')) throw new Error(`${dir} has no index.html: run npm run build`);
  }

  get size(): number {
    return this.#files.size;
  }

  /** Answers a GET/HEAD for `path` (`/` is index.html); returns false when there is no such file. */
  serve(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    const asset = this.#files.get(path === '/' ? '/index.html' : path);
    if (!asset) return false;
    const headers: Record<string, string | number> = {
      'content-type': asset.type,
      etag: asset.etag,
      'cache-control': asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      vary: 'accept-encoding',
      ...(asset.type.startsWith('text/html') ? PAGE_SECURITY_HEADERS : { 'x-content-type-options': 'nosniff' }),
    };
    if (req.headers['if-none-match'] === asset.etag) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    const gzip = asset.gzip && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    const body = gzip ? (asset.gzip as Buffer) : asset.body;
    res.writeHead(200, { ...headers, 'content-length': body.length, ...(gzip ? { 'content-encoding': 'gzip' } : {}) });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  }
}
