/* The field app's service worker: keeps the app shell, the rules and the message catalogues so
 * the app opens offline, in its language.
 *
 * Network first (a few seconds at most), the cached copy otherwise: a phone with signal always
 * gets the current app, one without still gets the last. Only GETs of the app's own files are
 * touched; scans (POST /api/scans) and traces go to the network untouched, and the page keeps
 * its own queue and copies of what it looked up (IndexedDB).
 */
const CACHE = "smarttrees-field-v3";
const SHELL = [
  "./",
  "manifest.webmanifest",
  "icons/192.png",
  "icons/512.png",
  "rules.json",
  "care.json",
  "static/field/app.js",
  "static/field/field.css",
  "static/vendor/maplibre-gl/maplibre-gl.js",
  "static/vendor/maplibre-gl/maplibre-gl.css",
  "static/vendor/zxing-wasm/zxing-reader.js",
  "static/vendor/zxing-wasm/zxing_reader.wasm",
  "__CATALOGUES__", // the server lists static/i18n.js and every static/i18n/<code>.json here
];
const TILES = "smarttrees-field-tiles"; // app.js's TILES_CACHE: written and read by the page
const NETWORK_WAIT_MS = 4000;
const scope = new URL(self.registration.scope);

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      // The old shells go; the map tiles the page kept for offline use (TILES) stay.
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE && k !== TILES).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await Promise.race([
      fetch(request),
      new Promise((_, reject) => setTimeout(() => reject(new Error("slow network")), NETWORK_WAIT_MS)),
    ]);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (error) {
    const cached = await cache.match(request, { ignoreSearch: true });
    if (cached) return cached;
    throw error;
  }
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== scope.origin) return;
  if (!url.pathname.startsWith(scope.pathname) || url.pathname.endsWith("/me")) return;
  // Asked with signal only, never an old answer: the page keeps what it needs of them itself.
  if (url.pathname.endsWith("/tiles/plan") || url.pathname.endsWith("/team")) return;
  event.respondWith(networkFirst(event.request));
});
