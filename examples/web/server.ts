/**
 * A tiny static HTTP server on 127.0.0.1 for the demo and the browser tests. It sends the
 * cross-origin isolation headers, so the page gets SharedArrayBuffer and gpu.js's webasm backend
 * can run its worker threads; 127.0.0.1 is a secure context, so WebGPU is exposed.
 */
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';

export interface StaticFile {
  readonly body: string | Uint8Array;
  readonly type: string;
}

export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.json': 'application/json',
  '.png': 'image/png',
  '.map': 'application/json',
};

export interface RunningServer {
  readonly url: string;
  close(): Promise<void>;
}

/** Serves `files` (URL path → content) and, when given, files under `root`. */
export function startServer(files: ReadonlyMap<string, StaticFile>, options: { root?: string; port?: number } = {}): Promise<RunningServer> {
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
      const key = path.endsWith('/') ? `${path}index.html` : path;
      let file = files.get(key);
      if (file === undefined && options.root !== undefined) {
        const full = normalize(join(options.root, key));
        if (full.startsWith(normalize(options.root) + sep)) {
          try {
            file = { body: await readFile(full), type: CONTENT_TYPES[extname(full)] ?? 'application/octet-stream' };
          } catch {
            file = undefined;
          }
        }
      }
      const headers = {
        'Cross-Origin-Opener-Policy': 'same-origin',
        'Cross-Origin-Embedder-Policy': 'require-corp',
        'Cache-Control': 'no-store',
      };
      if (file === undefined) {
        res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' }).end(`not found: ${path}`);
        return;
      }
      res.writeHead(200, { ...headers, 'Content-Type': file.type }).end(file.body);
    })();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
  });
}
