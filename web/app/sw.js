// Service worker: keeps the app shell so Avisa opens with no connection.
// Network first (a new version arrives at once), the cached copy when
// offline. The API is never cached: statuses must be live.

const CACHE = 'avisa-shell-v3';
const SHELL = ['/', '/app.css', '/app.js', '/i18n.js', '/sms.js', '/store.js', '/countries.js', '/manifest.webmanifest', '/icon.svg', '/icon-192.png'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  // The app's own page and files only: the console, the API and anything
  // else on this origin are never answered or stored by this worker (a
  // visit to /console once replaced the app's start page, and offline the
  // button was gone).
  const page = event.request.mode === 'navigate' && (url.pathname === '/' || url.pathname === '/index.html');
  const asset = !page && SHELL.includes(url.pathname);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin || !(page || asset)) {
    return;
  }
  const key = page ? '/' : url.pathname;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((c) => c.put(key, copy));
        }
        return response;
      })
      .catch(() => caches.match(key).then((hit) => hit || Response.error())),
  );
});
