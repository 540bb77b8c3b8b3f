/**
 * Node icons of the service map, by node kind and category, as SVG data URLs (bundled: no icon font, no
 * network). Colours match the legend in styles.css.
 */

export const CATEGORY_COLOURS: Readonly<Record<string, string>> = {
  http: '#2f6fde',
  rpc: '#7a4fd1',
  db: '#d9822b',
  messaging: '#2a9d8f',
  async_backend: '#2a9d8f',
  remote: '#6b7280',
  other: '#8a94a6',
};

const GLYPHS: Readonly<Record<string, string>> = {
  // a globe: services answering HTTP
  http: '<circle cx="12" cy="12" r="6.5" fill="none" stroke="#fff" stroke-width="1.6"/><path d="M5.5 12h13M12 5.5c2.2 2.4 2.2 10.6 0 13M12 5.5c-2.2 2.4-2.2 10.6 0 13" fill="none" stroke="#fff" stroke-width="1.4"/>',
  // two arrows: RPC
  rpc: '<path d="M6 9h10l-3-3M18 15H8l3 3" fill="none" stroke="#fff" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/>',
  // a cylinder: databases and caches
  db: '<ellipse cx="12" cy="7.5" rx="5.5" ry="2.2" fill="none" stroke="#fff" stroke-width="1.6"/><path d="M6.5 7.5v9c0 1.2 2.5 2.2 5.5 2.2s5.5-1 5.5-2.2v-9M6.5 12c0 1.2 2.5 2.2 5.5 2.2s5.5-1 5.5-2.2" fill="none" stroke="#fff" stroke-width="1.6"/>',
  // an envelope: messaging
  messaging: '<rect x="5.5" y="7.5" width="13" height="9" rx="1" fill="none" stroke="#fff" stroke-width="1.6"/><path d="M5.5 8l6.5 5 6.5-5" fill="none" stroke="#fff" stroke-width="1.6"/>',
  // a cloud: remote services outside the application
  remote: '<path d="M8 17h8.5a3 3 0 0 0 .3-6 4.5 4.5 0 0 0-8.6-1.2A3.6 3.6 0 0 0 8 17z" fill="none" stroke="#fff" stroke-width="1.6"/>',
  // a dot: anything else
  other: '<circle cx="12" cy="12" r="3.2" fill="#fff"/>',
};

/** The icon family of a node: remote services first, then its category. */
export function iconKey(kind: string, category: string): string {
  if (kind === 'remote_service') return 'remote';
  if (category === 'async_backend') return 'messaging';
  return category in GLYPHS ? category : 'other';
}

const cache = new Map<string, string>();

/** An SVG data URL: the glyph in white on a disc of the category's colour. */
export function iconUrl(kind: string, category: string): string {
  const key = iconKey(kind, category);
  let url = cache.get(key);
  if (!url) {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="48" height="48" viewBox="0 0 24 24"><circle cx="12" cy="12" r="11" fill="${CATEGORY_COLOURS[key] ?? '#8a94a6'}"/>${GLYPHS[key] ?? ''}</svg>`;
    url = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
    cache.set(key, url);
  }
  return url;
}

/** Human name of a node kind. */
export const KIND_NAMES: Readonly<Record<string, string>> = {
  service: 'service',
  component: 'component',
  remote_service: 'remote service',
  virtual_service: 'virtual service',
};
