// Where a room's keys live between page loads: one IndexedDB record per
// room in this browser, holding the non-extractable private CryptoKey (the
// browser stores it without ever handing its bytes to a script), the public
// keys seen and the send counter. Every tab of the room in this browser
// shares it, so a reload or a second tab reads the history; the record goes
// when the room ends (DESTROY NOW, expiry, a page that finds it gone) and,
// for a tab closed before that, at the first wisp page opened after the
// room's deadline. MemoryVault is the same for node --test.

const DB_NAME = "wisp-e2e";
const STORE = "rooms";

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** The record store on IndexedDB. */
export class IndexedDBVault {
  constructor(indexedDB = globalThis.indexedDB) {
    this.idb = indexedDB;
    this.db = null;
  }

  async open() {
    if (this.db) return this.db;
    const req = this.idb.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "roomId" });
    const db = await request(req);
    // Another tab upgrading the database must not wait for this one, nor
    // the next page for this one in the back/forward cache.
    const close = () => {
      db.close();
      if (this.db === db) this.db = null;
    };
    db.onversionchange = close;
    globalThis.addEventListener?.("pagehide", close, { once: true });
    this.db = db;
    return db;
  }

  /** Whether this browser has the database at all (without making it). */
  async exists() {
    if (typeof this.idb.databases !== "function") return true;
    const all = await this.idb.databases();
    return all.some((d) => d.name === DB_NAME);
  }

  async tx(mode, work) {
    const db = await this.open();
    const t = db.transaction(STORE, mode);
    const done = new Promise((resolve, reject) => {
      t.oncomplete = resolve;
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
    const result = await work(t.objectStore(STORE));
    await done;
    return result;
  }

  get(roomId) {
    return this.tx("readonly", (s) => request(s.get(roomId)));
  }

  put(record) {
    return this.tx("readwrite", (s) => request(s.put(record)));
  }

  /**
   * Changes the room's record in one transaction (tabs of the room take
   * turns), returning what change returned; no record: undefined.
   */
  update(roomId, change) {
    return this.tx("readwrite", async (s) => {
      const record = await request(s.get(roomId));
      if (!record) return undefined;
      const out = change(record);
      await request(s.put(record));
      return out;
    });
  }

  delete(roomId) {
    return this.tx("readwrite", (s) => request(s.delete(roomId)));
  }

  /** Deletes the room's record if this browser has the database (none: nothing is made). */
  async forget(roomId) {
    if (!this.db && !(await this.exists())) return;
    await this.delete(roomId);
  }

  /** Deletes the records of rooms whose deadline has passed (none: nothing is made). */
  async purge(now = Date.now()) {
    if (!this.db && !(await this.exists())) return;
    return this.tx("readwrite", async (s) => {
      const all = await request(s.getAll());
      for (const r of all) if (!(r.expiresAt > now)) await request(s.delete(r.roomId));
    });
  }
}

/** The same store in memory (tests; browsers without IndexedDB, for the page's life). */
export class MemoryVault {
  constructor() {
    this.records = new Map();
  }

  async get(roomId) {
    return this.records.get(roomId);
  }

  async put(record) {
    this.records.set(record.roomId, record);
  }

  async update(roomId, change) {
    const record = this.records.get(roomId);
    return record ? change(record) : undefined;
  }

  async delete(roomId) {
    this.records.delete(roomId);
  }

  async forget(roomId) {
    this.records.delete(roomId);
  }

  async purge(now = Date.now()) {
    for (const [id, r] of this.records) if (!(r.expiresAt > now)) this.records.delete(id);
  }
}
