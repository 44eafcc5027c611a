// The alert waiting for a connection, kept in IndexedDB so it survives the
// app being closed. One at a time: a press while one waits reuses it, so the
// same idempotency key is sent until the server has it, and never twice.

const DB = 'avisa';
const STORE = 'pending';

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function run(mode, action) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const req = action(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(req && req.result);
    tx.onerror = () => reject(tx.error);
  });
}

export function getPending() {
  return run('readonly', (s) => s.get('alert'));
}

export function savePending(alert) {
  return run('readwrite', (s) => s.put(alert, 'alert'));
}

export function clearPending() {
  return run('readwrite', (s) => s.delete('alert'));
}
