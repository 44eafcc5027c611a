// The alert waiting for a connection: the one thing of the person's the app
// keeps on the phone's disk, so a press survives the app being closed. One
// at a time: a press while one waits reuses it, so the same idempotency key
// is sent until the server has it, and never twice.
//
// It is one file in the Origin Private File System, removed once the press
// is sent and by "delete my data": a removed file's bytes go with it.
// IndexedDB and localStorage sit on LevelDB, whose logs keep deleted values
// (a place, the moment of a press) on disk until a compaction that may never
// come. Only a browser without that file system (older than 2022) falls back
// to IndexedDB.

const FILE = 'pending-alert.json';
const DB = 'avisa';
const STORE = 'pending';

const opfs = typeof navigator !== 'undefined' && navigator.storage && typeof navigator.storage.getDirectory === 'function';

async function dir() {
  return navigator.storage.getDirectory();
}

async function readFile() {
  try {
    const handle = await (await dir()).getFileHandle(FILE);
    const text = await (await handle.getFile()).text();
    return text ? JSON.parse(text) : undefined;
  } catch (e) {
    if (e && e.name === 'NotFoundError') return undefined;
    throw e;
  }
}

async function writeFile(alert) {
  const handle = await (await dir()).getFileHandle(FILE, { create: true });
  const w = await handle.createWritable();
  await w.write(JSON.stringify(alert));
  await w.close();
}

async function removeFile() {
  try {
    await (await dir()).removeEntry(FILE);
  } catch (e) {
    if (!e || e.name !== 'NotFoundError') throw e;
  }
}

// ---- the fallback, for browsers without the file system ----------------------

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
    tx.oncomplete = () => { db.close(); resolve(req && req.result); };
    tx.onerror = () => { db.close(); reject(tx.error); };
  });
}

function dropDatabase() {
  return new Promise((resolve) => {
    const req = indexedDB.deleteDatabase(DB);
    req.onsuccess = req.onerror = req.onblocked = () => resolve();
  });
}

// ---- what the app calls -------------------------------------------------------

export function getPending() {
  return opfs ? readFile() : run('readonly', (s) => s.get('alert'));
}

export function savePending(alert) {
  return opfs ? writeFile(alert) : run('readwrite', (s) => s.put(alert, 'alert'));
}

export async function clearPending() {
  if (opfs) return removeFile();
  return run('readwrite', (s) => s.delete('alert'));
}

// A press an older version kept in IndexedDB moves to the file, and the
// database goes. Run once at start.
export async function migratePending() {
  if (!opfs || typeof indexedDB === 'undefined' || !indexedDB.databases) return;
  const names = (await indexedDB.databases()).map((d) => d.name);
  if (!names.includes(DB)) return;
  const old = await run('readonly', (s) => s.get('alert')).catch(() => undefined);
  if (old && !(await readFile())) await writeFile(old);
  await dropDatabase();
}

// "Delete my data": the press file (and any older database) goes.
export async function forgetPending() {
  if (opfs) await removeFile().catch(() => {});
  if (typeof indexedDB !== 'undefined') await dropDatabase();
}
