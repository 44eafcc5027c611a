// Service worker: keeps the app shell so Avisa opens at once, and with no
// connection at all. Cache first: the shell is versioned (the server stamps
// the version of the app's files below when it is built), so a new version
// of any file is a new worker, which fetches the new shell whole before it
// takes over; until then the person's phone keeps the version it has. The
// API is never answered here: statuses must be live.

const CACHE = 'avisa-shell-__AVISA_SHELL_VERSION__';
// What the button needs with no network (the larger icons only serve
// installing the app, which needs a network anyway).
const SHELL = ['/', '/app.css', '/app.js', '/i18n.js', '/sms.js', '/store.js', '/countries.js', '/manifest.webmanifest', '/icon.svg'];

self.addEventListener('install', (event) => {
  // All or nothing; each file revalidated (a 304 when the browser has it).
  event.waitUntil(
    caches.open(CACHE)
      .then((c) => c.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('avisa-shell-') && k !== CACHE).map((k) => caches.delete(k))))
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
    caches.open(CACHE).then((cache) => cache.match(key).then((hit) => hit || fetch(event.request).then((response) => {
      if (response.ok) cache.put(key, response.clone());
      return response;
    }))),
  );
});
