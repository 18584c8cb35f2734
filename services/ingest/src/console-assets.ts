// The review console's built files (services/console/dist, `make install` builds them) under
// /console/, without an API key: the page itself holds no data, and asks for the key to call the
// API. Only files inside that folder are served; every answer carries a strict CSP, so the page
// can load nothing but its own scripts, styles and images and talk to nothing but this origin.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** Where `vite build` writes the console (services/console/vite.config.ts). */
export const CONSOLE_DIST = path.resolve(import.meta.dirname, '..', '..', 'console', 'dist');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

/** blob: for the page's own previews of picked files; data: for Vite's inlined small assets. */
const CSP = [
  "default-src 'self'",
  "img-src 'self' blob: data:",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/**
 * Serves GET/HEAD /console and everything under it; false for any other path. Hashed assets are
 * cached for a year, index.html never (it names the current hashes).
 */
export async function serveConsole(req: http.IncomingMessage, res: http.ServerResponse, pathname: string, dist = CONSOLE_DIST): Promise<boolean> {
  if (pathname !== '/console' && !pathname.startsWith('/console/')) return false;
  const plain = (status: number, text: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS, ...headers });
    res.end(req.method === 'HEAD' ? undefined : text + '\n');
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    plain(405, 'method not allowed', { allow: 'GET, HEAD' });
    return true;
  }
  if (pathname === '/console') {
    plain(308, 'see /console/', { location: '/console/' });
    return true;
  }
  let rel: string;
  try {
    rel = decodeURIComponent(pathname.slice('/console/'.length)) || 'index.html';
  } catch {
    plain(400, 'bad path');
    return true;
  }
  // No "..", no absolute or hidden names, no backslashes or NULs: plain relative file names only,
  // and the resolved file must still be inside the folder.
  const file = path.resolve(dist, rel);
  if (!/^[\w.\/-]+$/.test(rel) || rel.split('/').some((p) => p === '' || p.startsWith('.')) || !file.startsWith(dist + path.sep)) {
    plain(404, 'not found');
    return true;
  }
  let body: Buffer;
  try {
    body = await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (rel === 'index.html' && code === 'ENOENT') plain(503, 'the review console is not built: run `make install` (or `npm run build -w @tampertrace/console`)');
    else if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') plain(404, 'not found');
    else throw err;
    return true;
  }
  res.writeHead(200, {
    'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
    'content-length': String(body.length),
    'cache-control': rel.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
    ...SECURITY_HEADERS,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}
