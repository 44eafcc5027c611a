// The alert waiting for a connection: the one thing of the person's the app
// keeps on the phone's disk, so a press survives the app being closed. One
// at a time: a press while one waits reuses it, so the same idempotency key
// is sent until the server has it, and never twice.
//
// It is one file in the Origin Private File System, removed once the press
// is sent and by "delete my data": a removed file's bytes go with it.
// IndexedDB and localStorage sit on LevelDB, whose logs keep deleted values
// (a place, the moment of a press) on disk until a compaction that may never
// come. IndexedDB holds it only where that file cannot be written (older
// browsers), and a press an older version left there is still found.

const FILE = 'pending-alert.json';
const DB = 'avisa';
// Writing needs FileSystemWritableFileStream too (Safari had the directory
// long before it).
const opfs = !!(navigator.storage && navigator.storage.getDirectory && self.FileSystemFileHandle && 'createWritable' in FileSystemFileHandle.prototype);
const dir = () => navigator.storage.getDirectory();
const missing = (e) => { if (!e || e.name !== 'NotFoundError') throw e; };

// IndexedDB: `op` on the 'pending' store; 'drop' deletes the database.
function idb(op, value) {
  return new Promise((resolve, reject) => {
    if (op === 'drop') { const d = indexedDB.deleteDatabase(DB); d.onsuccess = d.onerror = d.onblocked = () => resolve(); return; }
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore('pending');
    req.onerror = () => reject(req.error);
    req.onsuccess = () => {
      const db = req.result;
      const tx = db.transaction('pending', op === 'get' ? 'readonly' : 'readwrite');
      const r = op === 'get' ? tx.objectStore('pending').get('alert') : tx.objectStore('pending').put(value, 'alert');
      tx.oncomplete = () => { db.close(); resolve(r.result); };
      tx.onerror = () => { db.close(); reject(tx.error); };
    };
  });
}

const legacy = () => indexedDB.databases().then((l) => l.some((d) => d.name === DB), () => false);

export async function getPending() {
  if (opfs) {
    const text = await dir().then((d) => d.getFileHandle(FILE)).then((h) => h.getFile()).then((f) => f.text()).catch(missing);
    if (text) return JSON.parse(text);
    if (!(await legacy())) return undefined;
  }
  return idb('get');
}

// A press is never lost: if the file cannot be written, IndexedDB keeps it.
export async function savePending(alert) {
  if (opfs) {
    try {
      const w = await (await (await dir()).getFileHandle(FILE, { create: true })).createWritable();
      await w.write(JSON.stringify(alert));
      return await w.close();
    } catch { /* below */ }
  }
  return idb('put', alert);
}

// Sent, withdrawn, or "delete my data" (`all`): the file and any database go.
export async function clearPending(all) {
  if (opfs) await dir().then((d) => d.removeEntry(FILE)).catch(missing);
  if (all || !opfs || await legacy()) await idb('drop');
}
