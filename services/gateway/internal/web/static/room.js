// Room page wiring: it puts the DOM-free parts together and draws them.
// countdown.js keeps the time left in step with the server; store.js keeps
// the messages (appended, de-duplicated, gaps back-filled, own sends shown
// as sending / sent / read / failed with RETRY in place); socket.js keeps
// the WebSocket of docs/WEBSOCKET.md open (POST when it is not). Here:
// rendering, announcements, the composer, copy, QR, destroy (confirmed),
// the offline state, the new-messages cue, the title badge and the opt-in
// notification. In an end-to-end room (the room says so in its TTL answer)
// e2e.js holds the keys: every message is opened before the store sees it
// and sealed before it leaves, the short authentication string shows in
// the header, and a mismatch blocks sending until the person chooses.

import { api, getUsername, localize, newClientId, t } from "./common.js";
import { Countdown, formatRemaining } from "./countdown.js";
import { MessageStore, isMessage } from "./store.js";
import { Live } from "./socket.js";
import { MAX_LENGTH, canSend, counterState, enterAction } from "./composer.js";
import { E2ESession } from "./e2e.js";
import { SAS_EMOJI } from "./crypto.js";
import { IndexedDBVault, MemoryVault } from "./vault.js";

const $ = (id) => document.getElementById(id);

const TTL_SYNC_MS = 30000;
const CONNECTING_NOTICE_MS = 2000;
const LOAD_RETRY_MS = 3000;
const COPIED_MS = 2000;
const NEAR_BOTTOM_PX = 64;
const ACK_TIMEOUT_MS = 10000; // a send not answered by then is failed (Retry)
const SLOW_SEND_MS = 2000; // a send confirmed later than this is announced
const TYPING_SEND_MS = 2000; // at most one "typing" frame per this while typing
const TYPING_SHOW_MS = 3000; // "typing…" shows this long after a chat.typing
const TYPING_ANNOUNCE_MS = 15000; // "Peer is typing" is said at most this often
const READ_DELAY_MS = 100; // read receipts are folded over this
const WIPE_WAIT_MS = 1500; // leaving waits this long at most for the keys to be deleted
const VAULT_WAIT_MS = 3000; // the keys' database must open within this, or memory holds them

// The share link's fragment (#fp=…) is read once and leaves the address
// bar at once: it is not sent anywhere, and a reload or a copied address
// does not carry it on.
const linkPin = takePin();

localize();

const roomId = roomIdFromPath();
const roomQuery = `roomId=${encodeURIComponent(roomId)}`;
const username = getUsername();

const el = {
  roomId: $("room-id"),
  copy: $("copy"),
  showQr: $("show-qr"),
  shareUrl: $("share-url"),
  countdown: $("countdown"),
  notify: $("notify"),
  destroy: $("destroy"),
  connStatus: $("conn-status"),
  announcer: $("announcer"),
  presence: $("presence"),
  presenceText: $("presence-text"),
  typing: $("typing"),
  scroller: $("messages"),
  list: $("msg-list"),
  empty: $("empty"),
  newMessages: $("new-messages"),
  error: $("room-error"),
  form: $("composer"),
  input: $("message-input"),
  send: $("send"),
  counter: $("counter"),
  confirm: $("confirm-destroy"),
  confirmYes: $("confirm-yes"),
  confirmCancel: $("confirm-cancel"),
  qrDialog: $("qr-dialog"),
  qrFrame: $("qr-frame"),
  qrUrl: $("qr-url"),
  qrClose: $("qr-close"),
  e2eBlock: $("e2e"),
  e2eStatus: $("e2e-status"),
  sas: $("sas"),
  e2eAlert: $("e2e-alert"),
  e2eAlertText: $("e2e-alert-text"),
  e2eTrust: $("e2e-trust"),
  e2eDestroy: $("e2e-destroy"),
};

const STATE_KEY = { sending: "stateSending", sent: "stateSent", read: "stateRead", failed: "stateFailed" };

// Once true, the page is on its way to the home page: every async callback
// checks it so nothing re-renders or reconnects behind the navigation.
let leaving = false;

function takePin() {
  const hash = location.hash;
  if (!hash) return "";
  history.replaceState(history.state, "", location.pathname + location.search);
  const m = /^#fp=([A-Za-z0-9_-]{22})$/.exec(hash);
  return m ? m[1] : "";
}

function roomIdFromPath() {
  const m = /^\/room\/([^/]+)\/?$/.exec(location.pathname);
  if (!m) return "";
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return "";
  }
}

/**
 * The room is gone (destroyed, expired, or our membership is): its keys
 * and its cookie are deleted from this browser, then the page goes home.
 */
function leaveDestroyed() {
  if (leaving) return;
  leaving = true;
  countdown.stop();
  live.stop();
  for (const d of [el.confirm, el.qrDialog]) if (d.open) d.close();
  // The keys, and the cookie (a token for a room that is no more), go too.
  const wiped = Promise.all([
    (e2e ? e2e.wipe() : vault.forget(roomId)).catch(() => {}),
    api("POST", `/api/room/leave?${roomQuery}`, undefined, { timeoutMs: WIPE_WAIT_MS }),
  ]);
  const wait = new Promise((resolve) => setTimeout(resolve, WIPE_WAIT_MS));
  Promise.race([wiped, wait]).then(() => location.replace("/?destroyed=true"));
}

/** True (and navigating away) when an API answer says the room is gone. */
function roomGone(res) {
  if (res.status !== 401) return false;
  leaveDestroyed();
  return true;
}

// ---------- Errors and announcements ----------

// One alert region, shared; `source` stops a later success of one action
// from wiping the error of another.
let errorSource = "";

function showError(source, text) {
  errorSource = source;
  keepBottom(() => (el.error.textContent = text));
}

function clearError(source) {
  if (errorSource !== source) return;
  errorSource = "";
  keepBottom(() => (el.error.textContent = ""));
}

// Polite announcements made within one tick are said together, so a
// later one does not cut off an earlier one.
const announcer = { parts: [], handle: 0 };

function announce(text) {
  if (!announcer.parts.includes(text)) announcer.parts.push(text);
  clearTimeout(announcer.handle);
  el.announcer.textContent = "";
  // A fresh text node after a tick makes screen readers repeat identical text.
  announcer.handle = setTimeout(() => {
    el.announcer.textContent = announcer.parts.join(" ");
    announcer.parts = [];
  }, 50);
}

/** "Could not reach the server." -> "Could not reach the server" (to go inside a sentence). */
function clause(text) {
  return String(text).replace(/[\s.]+$/, "");
}

// ---------- Title: the room, the unread badge, the last minute ----------

const title = { unread: 0, left: null };

function renderTitle() {
  const badge = title.unread > 0 ? `(${title.unread}) ` : "";
  const urgent = title.left !== null && title.left < 60 ? `${formatRemaining(title.left)} · ` : "";
  document.title = `${badge}${urgent}${t("roomTitle")}`;
}

// ---------- Countdown ----------

const countdown = new Countdown({
  onTick(s) {
    el.countdown.textContent = formatRemaining(s);
    el.countdown.classList.toggle("is-urgent", s < 60);
    title.left = s;
    renderTitle();
  },
  onWarn(threshold) {
    announce(threshold === 60 ? t("sayOneMinute") : t("sayTenSeconds"));
  },
  onEnd: leaveDestroyed,
});

let ttlInFlight = false;

async function syncTtl() {
  if (leaving || ttlInFlight) return;
  ttlInFlight = true;
  const res = await api("GET", `/api/room/ttl?${roomQuery}`);
  ttlInFlight = false;
  if (leaving || roomGone(res)) return;
  if (res.ok && res.data && Number.isFinite(res.data.ttl)) {
    countdown.apply(res.data.ttl);
    learnMode(res.data.e2e === true, res.data.ttl);
  } else if (!mode.known) {
    // Nothing can be opened or sent before the room's kind is known.
    setTimeout(syncTtl, LOAD_RETRY_MS);
  }
  // Other failures (network blips) keep the local countdown running.
}

// ---------- End-to-end: the room's kind, the keys, the SAS ----------

const mode = { known: false, e2e: false };
let markReady;
const modeReady = new Promise((resolve) => (markReady = resolve));
/** @type {E2ESession|null} */
let e2e = null;
const vault = typeof indexedDB === "object" && indexedDB ? new IndexedDBVault() : new MemoryVault();

/** The first TTL answer says whether the room is end-to-end; its keys are loaded (or made) then. */
async function learnMode(isE2E, ttl) {
  if (mode.known) return;
  mode.known = true;
  mode.e2e = isE2E;
  if (isE2E) {
    const session = new E2ESession({ roomId, vault: await usableVault(), send: (f) => live.send(f), onChange: e2eChanged });
    try {
      await session.start({ pin: linkPin, expiresAt: Date.now() + ttl * 1000 });
    } catch (err) {
      showError("e2e", t("e2eUnavailable", { why: String(err && err.message ? err.message : err) }));
      renderE2E();
      markReady(); // messages show as unreadable; nothing is sent
      return;
    }
    if (leaving) return;
    e2e = session;
    e2e.announce();
  }
  renderE2E();
  markReady();
  // What was written before the room's kind was known goes now.
  resendWaiting((entry) => entry.via === null);
}

/**
 * IndexedDB where the browser lets us open it in time (not in some private
 * modes, nor while another page holds it up): memory otherwise, so the
 * room works, only a reload reads no history.
 */
async function usableVault() {
  const late = new Promise((resolve) => setTimeout(resolve, VAULT_WAIT_MS, "late"));
  try {
    if ((await Promise.race([vault.open?.(), late])) !== "late") return vault;
  } catch {
    // refused: fall through
  }
  return new MemoryVault();
}

let lastStatus = "";

function e2eChanged() {
  if (leaving) return;
  renderE2E();
  const status = e2e ? e2e.state().status : "";
  if (status !== lastStatus) {
    if (status === "mismatch") announce(t("sayE2EMismatch"));
    lastStatus = status;
  }
  if (e2e && e2e.canSend) pumpSends();
  renderComposer();
}

function sasText(indices) {
  return indices ? indices.map((i) => SAS_EMOJI[i][0]).join("\u2009") : "";
}

function sasNames(indices) {
  return indices ? indices.map((i) => SAS_EMOJI[i][1]).join(", ") : "";
}

/** The header's encryption block and the mismatch alert. */
function renderE2E() {
  if (!mode.known) return;
  let status = "plain";
  let st = null;
  if (mode.e2e) {
    st = e2e ? e2e.state() : { status: "unavailable", sas: null, problem: "", pinned: false };
    status = st.status;
  }
  el.e2eBlock.dataset.state = status;
  const label = {
    plain: t("e2ePlain"),
    unavailable: t("e2eOff"),
    waiting: t("e2eWaiting"),
    ready: st && st.pinned ? t("e2eVerifiedLink") : t("e2eReady"),
    mismatch: t("e2eMismatch"),
    trusted: t("e2eTrusted"),
  }[status];
  if (el.e2eStatus.textContent !== label) el.e2eStatus.textContent = label;
  const sas = st && st.sas ? sasText(st.sas) : "";
  if (el.sas.textContent !== sas) el.sas.textContent = sas;
  if (sas) {
    el.sas.setAttribute("aria-label", t("sasLabel", { names: sasNames(st.sas) }));
    el.sas.title = t("sasTitle");
  } else {
    el.sas.setAttribute("aria-label", t("sasNone"));
    el.sas.removeAttribute("title");
  }
  const alarm = status === "mismatch";
  if (alarm) el.e2eAlertText.textContent = t(`e2eProblem_${st.problem}`);
  if (el.e2eAlert.hidden === alarm) {
    keepBottom(() => (el.e2eAlert.hidden = !alarm));
    if (alarm) el.e2eTrust.focus();
  }
}

/** Sending is held back: a key mismatch the person has not decided on. */
function sendBlocked() {
  return mode.e2e && e2e !== null && e2e.state().status === "mismatch";
}

/** The link to share: in an end-to-end room it carries this browser's key fingerprint in its fragment. */
function shareLink() {
  const base = `${location.origin}${location.pathname}`;
  return e2e ? `${base}#fp=${e2e.ownFingerprint}` : base;
}

// Messages are opened one after another, in the order they came: the store
// must see a chat.message before the ack that follows it, as without
// encryption.
let inbound = Promise.resolve();

function inOrder(work) {
  const next = inbound.then(work);
  inbound = next.catch(() => {});
  return next;
}

/**
 * The messages as the store shows them: plain rooms' as they are; an
 * end-to-end room's opened (sender and text), or marked with why not
 * (sealed: "pending", "foreign", "forged", "malformed", "replayed",
 * "reordered").
 */
async function openAll(list) {
  await modeReady;
  if (!mode.e2e) return list;
  const out = [];
  for (const m of list) out.push(isMessage(m) ? await openOne(m) : m);
  return out;
}

async function openOne(m) {
  if (!e2e) return { ...m, sender: "", text: "", sealed: "malformed" };
  const r = await e2e.open(m);
  if (r.status === "ok") return { ...m, sender: r.sender, text: r.text, sealed: "ok" };
  return { ...m, sender: "", text: "", sealed: r.status };
}

/** chat.key: the other's key; messages waiting for it are opened now. */
async function keyArrived(data) {
  await modeReady;
  if (!e2e) return;
  await e2e.receiveKey(data);
  for (const entry of store.entries) {
    if (entry.msg.sealed !== "pending") continue;
    const opened = await openOne(entry.msg);
    if (opened.sealed === "pending") continue;
    entry.msg = opened;
    entry.own = store.isOwn(opened);
    view.update(entry);
  }
}

// ---------- Drawing messages (the store's view) ----------

function formatTime(ms) {
  if (!Number.isFinite(ms)) return "";
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// Text only ever goes in through textContent: chat text is never markup.
function buildNode(entry) {
  const item = document.createElement("li");
  item.className = "msg";

  const head = document.createElement("div");
  head.className = "msg-head";
  const sender = document.createElement("span");
  sender.className = "msg-sender";
  const time = document.createElement("time");
  time.className = "msg-time";
  head.append(sender, time);

  const text = document.createElement("p");
  text.className = "msg-text";

  item.append(head, text);
  entry.node = item;
  entry.parts = { head, sender, time, text, status: null, statusText: null, retry: null };
  renderEntry(entry);
  return item;
}

function renderEntry(entry) {
  const p = entry.parts;
  const sealed = entry.msg.sealed;
  const problem = sealed !== undefined && sealed !== "ok" ? sealed : "";
  // A message that could not be opened says why, in place of its text.
  const text = problem ? t(`sealed_${problem}`) : String(entry.msg.text ?? "");
  if (p.text.textContent !== text) p.text.textContent = text;
  if (problem) entry.node.dataset.sealed = problem;
  else delete entry.node.dataset.sealed;
  p.sender.textContent = entry.own ? t("you") : problem ? t("sealedSender") : String(entry.msg.sender ?? "");
  p.sender.classList.toggle("is-you", entry.own);
  const ms = entry.msg.timestamp;
  p.time.textContent = formatTime(ms);
  if (p.time.textContent) p.time.dateTime = new Date(ms).toISOString();
  renderState(entry);
}

function renderState(entry) {
  if (!entry.own) return;
  const p = entry.parts;
  if (!p.status) {
    p.status = document.createElement("span");
    p.status.className = "msg-status";
    // One text node, changed in place: the log announces added messages,
    // not each status change (the announcer says the ones that matter).
    p.statusText = document.createTextNode("");
    p.status.append(p.statusText);
    p.head.append(p.status);
    entry.node.classList.add("is-own");
  }
  const state = store.stateOf(entry);
  if (entry.node.dataset.state === state) return;
  entry.node.dataset.state = state;
  p.status.dataset.state = state;
  p.statusText.nodeValue = t(STATE_KEY[state]);
  if (state === "failed" && entry.reason) p.status.title = t("notSentTitle", { reason: clause(entry.reason) });
  else p.status.removeAttribute("title");

  if (state === "failed" && !p.retry) {
    p.retry = document.createElement("button");
    p.retry.type = "button";
    p.retry.className = "btn-small msg-retry";
    p.retry.textContent = t("retry");
    p.retry.setAttribute("aria-label", t("retryLabel"));
    p.retry.addEventListener("click", () => retry(entry));
    p.head.append(p.retry);
  } else if (state !== "failed" && p.retry) {
    p.retry.remove();
    p.retry = null;
  }
}

const view = {
  insert(entry, before) {
    el.list.insertBefore(buildNode(entry), before ? before.node : null);
  },
  move(entry, before) {
    el.list.insertBefore(entry.node, before ? before.node : null);
  },
  remove(entry) {
    entry.node.remove();
  },
  update(entry) {
    renderEntry(entry);
  },
};

const store = new MessageStore({ username, view });

// ---------- Scrolling: the newest stays in view, or a cue says there is more ----------

// Whether the reader was at the newest messages when they last scrolled; a
// layout change (keyboard, status line) keeps them there.
let stuck = true;
let unseen = 0;

function isNearBottom() {
  const s = el.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
}

function scrollToBottom() {
  el.scroller.scrollTop = el.scroller.scrollHeight;
  stuck = true;
  hideNewMessages();
}

/** Runs a layout change (a status line appearing...) without losing the newest message from view. */
function keepBottom(change) {
  const stick = isNearBottom();
  change();
  if (stick) scrollToBottom();
}

function showNewMessages(n) {
  unseen += n;
  el.newMessages.textContent = unseen > 1 ? t("newMessagesCount", { n: unseen }) : t("newMessages");
  el.newMessages.hidden = false;
}

function hideNewMessages() {
  unseen = 0;
  el.newMessages.hidden = true;
}

function renderEmptyState() {
  el.empty.hidden = !(store.loaded && store.empty);
}

/**
 * Shows what the store added: keeps the view at the newest message when
 * the reader was there (or always, for the first load), or shows the
 * new-messages cue; a peer's message in a hidden tab counts in the title
 * and may notify.
 */
function shown(entries, { stick, forceScroll = false }) {
  renderEmptyState();
  if (stick && (entries.length > 0 || forceScroll)) scrollToBottom();
  const fromPeer = entries.filter((e) => !e.own).length;
  if (!stick && fromPeer > 0 && !forceScroll) showNewMessages(fromPeer);
  if (fromPeer > 0 && !forceScroll && document.visibilityState === "hidden") {
    title.unread += fromPeer;
    renderTitle();
    notifyNew();
  }
  scheduleRead();
}

function addMessages(list) {
  const stick = isNearBottom();
  shown(store.add(list), { stick });
}

// ---------- Loading and gap-filling ----------

const sync = { running: false, again: false, retryHandle: 0 };

/**
 * Fetches what we do not have yet: the whole list the first time, then only
 * messages after the last contiguous seq. Calls made while one runs are
 * folded into one more round.
 */
async function syncMessages() {
  if (leaving) return;
  if (sync.running) {
    sync.again = true;
    return;
  }
  sync.running = true;
  clearTimeout(sync.retryHandle);
  try {
    do {
      sync.again = false;
      if (!(await fetchMessagesOnce())) return;
    } while (sync.again && !leaving);
  } finally {
    sync.running = false;
  }
}

/** One GET; false when it failed (a retry is then scheduled). */
async function fetchMessagesOnce() {
  const first = !store.loaded;
  const after = store.syncedSeq > 0 ? `&after=${store.syncedSeq}` : "";
  const res = await api("GET", `/api/messages?${roomQuery}${after}`);
  if (leaving || roomGone(res)) return false;

  const list = res.ok && res.data && Array.isArray(res.data.messages) ? res.data.messages : null;
  if (!list) {
    const why = res.ok ? t("unexpectedAnswerLower") : res.error;
    showError("load", t("couldNotLoad", { why }));
    sync.retryHandle = setTimeout(syncMessages, LOAD_RETRY_MS);
    return false;
  }

  clearError("load");
  await inOrder(async () => {
    const opened = await openAll(list);
    if (leaving) return;
    const stick = first || isNearBottom();
    shown(store.loadPage(opened), { stick, forceScroll: first });
  });
  // A server that pages its answer says there is more after this page.
  if (res.data.more === true) sync.again = true;
  if (first) {
    // The backlog went in while the log was silent: only what comes after
    // it is announced as new.
    setTimeout(() => {
      el.scroller.setAttribute("aria-live", "polite");
      el.scroller.removeAttribute("aria-busy");
    }, 0);
  }
  return true;
}

// ---------- Read receipts ----------

const reads = { sentSeq: 0, handle: 0 };

/** Tells the peer what we have seen, soon, if the newest messages are on screen. */
function scheduleRead() {
  if (reads.handle) return;
  reads.handle = setTimeout(() => {
    reads.handle = 0;
    sendRead();
  }, READ_DELAY_MS);
}

function sendRead() {
  if (leaving || document.visibilityState !== "visible" || !isNearBottom()) return;
  const { top, peerTop } = store.readMarks();
  if (peerTop > reads.sentSeq && live.send({ type: "read", seq: top })) reads.sentSeq = top;
}

function peerRead(seq) {
  const n = store.peerRead(seq);
  if (n) announce(n === 1 ? t("sayPeerRead") : t("sayPeerReadMany"));
}

// ---------- Typing and presence ----------

const typing = { sentAt: 0, hideHandle: 0, announcedAt: 0 };

/** While the person types: one "typing" frame per TYPING_SEND_MS at most. */
function noteTyping() {
  if (el.input.value.trim() === "") return;
  const now = Date.now();
  if (now - typing.sentAt < TYPING_SEND_MS) return;
  if (live.send({ type: "typing" })) typing.sentAt = now;
}

function showTyping() {
  clearTimeout(typing.hideHandle);
  if (el.typing.hidden) {
    el.typing.hidden = false;
    const now = Date.now();
    if (now - typing.announcedAt >= TYPING_ANNOUNCE_MS) {
      typing.announcedAt = now;
      announce(t("sayPeerTyping"));
    }
  }
  typing.hideHandle = setTimeout(hideTyping, TYPING_SHOW_MS);
}

function hideTyping() {
  clearTimeout(typing.hideHandle);
  el.typing.hidden = true;
}

// "unknown" while our own socket is down (we cannot tell then).
const peer = { state: "unknown", known: "" };

function setPresence(state) {
  if (peer.state === state) return;
  peer.state = state;
  el.presence.dataset.state = state;
  el.presenceText.textContent = state === "unknown" ? "--" : t(state);
  if (state !== "online") hideTyping();
  // Receipts are not stored: a peer who comes back learns ours again.
  if (state === "online" && reads.sentSeq > 0) live.send({ type: "read", seq: reads.sentSeq });
  // Keys are not stored either: one who opened the room later gets ours.
  if (state === "online" && e2e) e2e.announce();
  if (state === "unknown") return;
  // Say changes, not the first news or a reconnect that changed nothing.
  if (peer.known && peer.known !== state) announce(state === "online" ? t("sayPeerOnline") : t("sayPeerOffline"));
  peer.known = state;
}

// ---------- Connection: socket, network ----------

let noticeHandle = 0;
let everOpened = false;

function setConnStatus(text) {
  clearTimeout(noticeHandle);
  if (el.connStatus.textContent !== text) el.connStatus.textContent = text;
}

/** What the status line says when nothing is wrong with the socket itself. */
function idleStatus() {
  return navigator.onLine === false ? t("networkOffline") : "";
}

const live = new Live({
  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}/api/realtime?${roomQuery}`;
  },
  onOpen() {
    everOpened = true;
    setConnStatus(idleStatus());
    if (e2e) e2e.announce();
    // Sends the last socket took with it go again, with the same clientId:
    // one the server stored already is answered, not stored twice. So do
    // the ones that failed for want of a connection.
    resendWaiting((entry) => entry.via === null);
    // Catch up on anything sent while we were not subscribed.
    syncMessages();
    scheduleRead();
  },
  onFrame: handleFrame,
  onClose(socket, { current }) {
    // Its unanswered sends wait for the next socket (or their deadline).
    for (const entry of store.outbox.values()) {
      if (entry.via === socket) entry.via = null;
    }
    if (!current || leaving) return;
    reads.sentSeq = 0; // the next socket starts afresh on the server
    typing.sentAt = 0;
    setPresence("unknown");
    setConnStatus(navigator.onLine === false ? t("networkOffline") : t("reconnecting"));
    // A refused upgrade looks like any other close; the TTL endpoint tells
    // whether the room (or our membership) is gone.
    syncTtl();
  },
});

function handleFrame({ event, data }) {
  switch (event) {
    case "chat.destroy":
      leaveDestroyed();
      break;
    case "chat.message":
      if (isMessage(data)) {
        inOrder(async () => {
          const [msg] = await openAll([data]);
          if (leaving) return;
          const gap = store.isGap(msg.seq);
          if (!store.isOwn(msg)) hideTyping(); // they sent what they were typing
          addMessages([msg]);
          if (gap) syncMessages();
        });
      }
      break;
    case "ack":
      inOrder(async () => {
        if (!isMessage(data.message)) return;
        const [msg] = await openAll([data.message]);
        if (!leaving) sendAnswered({ ...data, message: msg });
      });
      break;
    case "chat.key":
      inOrder(() => keyArrived(data));
      break;
    case "error":
      sendRefused(data);
      break;
    case "chat.typing":
      showTyping();
      break;
    case "chat.read":
      peerRead(data.seq);
      break;
    case "chat.presence":
      setPresence(data.online === true ? "online" : "offline");
      break;
    default:
    // Events we do not know are ignored: new ones may be added.
  }
}

/** The network went away: say so; sends wait instead of failing. */
function wentOffline() {
  if (leaving) return;
  setConnStatus(t("networkOffline"));
}

/**
 * The network is back. The socket may have died without noticing: a fresh
 * one replaces it, and its open sends what waited. A page that never had a
 * socket sends by POST at once.
 */
function cameOnline() {
  if (leaving) return;
  setConnStatus(live.open ? "" : t("reconnecting"));
  live.renew();
  if (!everOpened) resendWaiting((entry) => entry.via === null);
  syncTtl();
}

// ---------- Send ----------

function renderComposer() {
  const text = el.input.value;
  const c = counterState(text);
  el.send.disabled = !canSend(text) || sendBlocked();
  el.counter.textContent = t("counter", { n: c.length, max: MAX_LENGTH });
  el.counter.classList.toggle("is-over", c.over);
  el.counter.classList.toggle("is-near", !c.over && c.left <= 100);
  if (c.over) el.input.setAttribute("aria-invalid", "true");
  else el.input.removeAttribute("aria-invalid");
  return c;
}

let wasOver = false;

function onComposerInput() {
  const c = renderComposer();
  // Say it once when the draft goes over the limit, not on every key.
  if (c.over && !wasOver) announce(t("tooLong", { n: -c.left }));
  wasOver = c.over;
  noteTyping();
}

/** Composes a message from the input: shown at once, then sent. */
function sendMessage() {
  const text = el.input.value;
  if (leaving || !canSend(text)) return;
  if (sendBlocked()) {
    // Nothing goes out under a key the person has not accepted.
    announce(t("sayE2EBlocked"));
    el.e2eTrust.focus();
    return;
  }
  el.input.value = "";
  wasOver = false;
  renderComposer();

  const entry = store.compose({ text, clientId: newClientId(), now: Date.now() });
  renderEmptyState();
  scrollToBottom();
  transmit(entry);
  el.input.focus();
}

/** Network-level failures (no answer, no connection) go again by themselves. */
function isRetryableStatus(status) {
  return status === 0 || status === 502 || status === 503 || status === 504;
}

// In an end-to-end room one send is out at a time, in the order written:
// each sender's counters must rise in the room's order, which two sends
// racing through the services would not keep.
let inFlight = null;

/** Whether another message than entry is out now (end-to-end rooms only). */
function busy(entry) {
  return inFlight !== null && inFlight !== entry && inFlight.state === "sending" && store.pending(inFlight.clientId) === inFlight;
}

/** The next message waiting for its turn (or for the keys) goes, if it may. */
function pumpSends() {
  if (leaving || !mode.e2e || busy(null)) return;
  inFlight = null;
  for (const entry of store.outbox.values()) {
    if (entry.state === "sending" && entry.via === null) {
      transmit(entry);
      return;
    }
  }
}

/** The message's body: sealed in an end-to-end room (null: it must wait), as it is otherwise. */
async function bodyOf(entry) {
  await modeReady;
  if (!mode.e2e) return { sender: username, text: entry.text };
  const envelope = e2e && e2e.canSend ? await e2e.seal(username, entry.text) : null;
  return envelope ? { envelope } : null;
}

/** One attempt at storing entry: over the socket when it is open, POST otherwise. */
async function transmit(entry) {
  if (leaving) return;
  entry.state = "sending";
  entry.reason = "";
  entry.retryable = false;
  entry.attempts++;
  const attempt = entry.attempts;
  renderEntry(entry);
  clearTimeout(entry.timer);
  if (navigator.onLine === false) {
    // Nothing can go out: it waits, still "sending", for the network.
    entry.via = null;
    return;
  }
  if (!mode.known || (mode.e2e && (busy(entry) || !e2e || !e2e.canSend))) {
    // It waits, still "sending", for the room's kind, the keys, the
    // person's choice, or the send before it.
    entry.via = null;
    return;
  }
  if (mode.e2e) inFlight = entry;
  entry.via = "sealing";
  const body = await bodyOf(entry);
  if (leaving || entry.attempts !== attempt || entry.state !== "sending") return;
  if (!body) {
    entry.via = null;
    if (inFlight === entry) inFlight = null;
    return;
  }
  entry.timer = setTimeout(() => {
    if (entry.attempts === attempt) failEntry(entry, t("noAnswer"), true);
  }, ACK_TIMEOUT_MS);

  if (live.send({ type: "send", clientId: entry.clientId, ...body })) {
    entry.via = live.socket;
    return;
  }
  entry.via = "post";
  postEntry(entry, attempt, body);
}

/** Sends again the waiting entries that match, and those that failed for want of a connection. */
function resendWaiting(match) {
  for (const entry of [...store.outbox.values()]) {
    if ((entry.state === "sending" && match(entry)) || (entry.state === "failed" && entry.retryable)) transmit(entry);
  }
}

async function postEntry(entry, attempt, sealed) {
  const body = { ...sealed, clientId: entry.clientId };
  const res = await api("POST", `/api/messages?${roomQuery}`, body, { timeoutMs: ACK_TIMEOUT_MS });
  if (leaving || roomGone(res)) return;
  if (!store.pending(entry.clientId)) return; // answered another way meanwhile
  const stored = res.ok && res.data ? res.data.message : null;
  // A late success still counts: it is the one stored message.
  if (isMessage(stored)) {
    await inOrder(async () => {
      const [msg] = await openAll([stored]);
      if (!leaving && store.pending(entry.clientId)) confirmEntry(entry, msg);
    });
    return;
  }
  if (entry.attempts !== attempt) return; // a newer attempt is under way
  failEntry(entry, res.ok ? t("unexpectedAnswerLower") : res.error, !res.ok && isRetryableStatus(res.status));
}

/** ack: the message stored for a clientId (a retry's too). */
function sendAnswered(data) {
  if (!isMessage(data.message)) return;
  const entry = store.pending(data.clientId);
  if (entry) confirmEntry(entry, data.message);
  else addMessages([data.message]);
}

/** error: the send of a clientId was not stored. */
function sendRefused(data) {
  const entry = store.pending(data.clientId);
  if (!entry) return;
  if (data.status === 401) {
    leaveDestroyed(); // the room, or our membership, is gone
    return;
  }
  let reason = typeof data.error === "string" && data.error ? data.error : t("requestFailed", { status: data.status });
  if (data.status === 429) reason = t("tooMany", { reason: clause(reason) });
  failEntry(entry, reason, isRetryableStatus(data.status));
}

/** The server has the message: the entry becomes it (and shows sent, or read). */
function confirmEntry(entry, msg) {
  clearTimeout(entry.timer);
  // Say it when the person may be waiting for it: after a failure, or slow.
  const noticed = entry.hadFailed || Date.now() - entry.since > SLOW_SEND_MS;
  const stick = isNearBottom();
  const added = store.confirm(entry, msg);
  if (noticed) announce(t("saySent"));
  shown(added, { stick });
  if (inFlight === entry) pumpSends();
}

/** The attempt failed: the message stays, marked failed, with RETRY. */
function failEntry(entry, reason, retryable = false) {
  clearTimeout(entry.timer);
  const stick = isNearBottom();
  const outcome = store.fail(entry, reason, { retryable });
  if (inFlight === entry) {
    inFlight = null;
    setTimeout(pumpSends, 0);
  }
  if (outcome === "confirmed") {
    announce(t("saySent"));
    return;
  }
  if (outcome !== "failed") return;
  const waiting = retryable && (navigator.onLine === false || !live.open);
  announce(t(waiting ? "sayWillResend" : "sayNotSent", { reason: clause(reason) }));
  shown(store.flushHeld(), { stick });
}

/** RETRY: the same message (same clientId) again; it can never be stored twice. */
function retry(entry) {
  if (leaving || entry.state !== "failed" || !store.pending(entry.clientId)) return;
  entry.since = Date.now();
  // The button goes away with the failed state: keep the keyboard in the composer.
  el.input.focus();
  transmit(entry);
}

// ---------- Copy and QR ----------

let copiedHandle = 0;

function flashCopied() {
  clearTimeout(copiedHandle);
  el.copy.textContent = t("copied");
  announce(t("sayLinkCopied"));
  copiedHandle = setTimeout(() => (el.copy.textContent = t("copy")), COPIED_MS);
}

/** Old-style copy through a selected input, for non-secure contexts. */
function copyViaSelection(text) {
  el.shareUrl.value = text;
  el.shareUrl.hidden = false;
  el.shareUrl.focus();
  el.shareUrl.select();
  try {
    return document.execCommand("copy");
  } catch {
    return false;
  }
}

async function copyLink() {
  const href = shareLink();
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(href);
      flashCopied();
      return;
    }
  } catch {
    // Permission denied or unfocused document: try the fallback.
  }
  if (copyViaSelection(href)) {
    el.shareUrl.hidden = true;
    el.copy.focus();
    flashCopied();
  } else {
    // Leave the link visible and selected so the user can copy it by hand.
    announce(t("sayCopyFailed"));
  }
}

const SVG = "http://www.w3.org/2000/svg";

/** Draws the room link's QR code (qr.js, loaded on first use) and opens its dialog. */
async function showQr() {
  const href = shareLink();
  if (el.qrFrame.dataset.href !== href) {
    const { qrMatrix, qrPath, QUIET } = await import("./qr.js");
    const matrix = qrMatrix(href);
    const size = matrix.length + 2 * QUIET;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
    svg.setAttribute("class", "qr");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", t("qrHeading"));
    svg.setAttribute("shape-rendering", "crispEdges");
    const back = document.createElementNS(SVG, "rect");
    back.setAttribute("width", String(size));
    back.setAttribute("height", String(size));
    back.setAttribute("class", "qr-light");
    const dark = document.createElementNS(SVG, "path");
    dark.setAttribute("d", qrPath(matrix));
    dark.setAttribute("class", "qr-dark");
    svg.append(back, dark);
    el.qrFrame.replaceChildren(svg);
    el.qrFrame.dataset.href = href;
    el.qrFrame.dataset.modules = String(matrix.length);
    el.qrUrl.textContent = href;
  }
  if (!leaving && !el.qrDialog.open) el.qrDialog.showModal();
}

// ---------- Destroy, after a confirmation ----------

let destroying = false;

function askDestroy() {
  if (leaving || destroying) return;
  el.confirm.showModal();
}

async function destroyRoom() {
  if (leaving || destroying) return;
  destroying = true;
  el.destroy.disabled = true;
  el.destroy.setAttribute("aria-busy", "true");

  const res = await api("DELETE", `/api/room?${roomQuery}`);
  if (leaving) return;
  if (res.ok || res.status === 401) {
    // Don't wait for chat.destroy: our socket may be down.
    leaveDestroyed();
    return;
  }
  showError("destroy", t("couldNotDestroy", { why: res.error }));
  destroying = false;
  el.destroy.disabled = false;
  el.destroy.removeAttribute("aria-busy");
  el.destroy.focus();
}

// ---------- Opt-in notification of new messages (never their text) ----------

const notifications = { on: false };

function renderNotify() {
  el.notify.setAttribute("aria-pressed", String(notifications.on));
}

async function toggleNotify() {
  if (notifications.on) {
    notifications.on = false;
    renderNotify();
    announce(t("notifyOff"));
    return;
  }
  let permission = Notification.permission;
  if (permission === "default") {
    try {
      permission = await Notification.requestPermission();
    } catch {
      permission = "denied";
    }
  }
  notifications.on = permission === "granted";
  renderNotify();
  announce(notifications.on ? t("notifyOn") : t("notifyBlocked"));
}

function notifyNew() {
  if (!notifications.on || typeof Notification !== "function" || Notification.permission !== "granted") return;
  try {
    // One notification per room, replaced by the next; no sender, no text.
    const n = new Notification(t("notificationTitle"), { body: t("notificationBody"), tag: `wisp-${roomId}` });
    n.addEventListener("click", () => {
      window.focus();
      n.close();
    });
  } catch {
    // Some browsers allow notifications only from a service worker.
  }
}

// ---------- Wiring ----------

function wireEvents() {
  el.input.addEventListener("input", onComposerInput);
  // Enter sends; Shift+Enter is a new line, the box's own way. A key
  // event whose character comes separately (as synthesized input does)
  // would still insert the line break Enter sent: that one is dropped too.
  let enterSent = false;
  el.input.addEventListener("keydown", (e) => {
    enterSent = false;
    if (enterAction(e) !== "send") return;
    e.preventDefault();
    enterSent = true;
    sendMessage();
  });
  el.input.addEventListener("keyup", () => (enterSent = false));
  el.input.addEventListener("beforeinput", (e) => {
    if (enterSent && (e.inputType === "insertLineBreak" || e.inputType === "insertParagraph")) e.preventDefault();
    enterSent = false;
  });
  el.form.addEventListener("submit", (e) => {
    e.preventDefault(); // never a real form submission
    sendMessage();
  });
  el.copy.addEventListener("click", copyLink);
  el.e2eTrust.addEventListener("click", async () => {
    if (!e2e) return;
    await e2e.trust();
    announce(t("sayE2ETrusted"));
    el.input.focus();
  });
  el.e2eDestroy.addEventListener("click", askDestroy);
  el.showQr.addEventListener("click", showQr);
  el.qrClose.addEventListener("click", () => el.qrDialog.close());
  el.destroy.addEventListener("click", askDestroy);
  el.confirmCancel.addEventListener("click", () => el.confirm.close());
  el.confirmYes.addEventListener("click", () => {
    el.confirm.close();
    destroyRoom();
  });
  // Focus goes back to what opened a dialog, however it was closed (Esc too).
  el.confirm.addEventListener("close", () => {
    if (!leaving && !destroying) el.destroy.focus();
  });
  el.qrDialog.addEventListener("close", () => {
    if (!leaving) el.showQr.focus();
  });
  el.newMessages.addEventListener("click", () => {
    scrollToBottom();
    el.scroller.focus();
  });
  // Shown from the first paint (nothing moves); gone where there is no such API.
  if (typeof Notification === "function") el.notify.addEventListener("click", toggleNotify);
  else el.notify.hidden = true;

  // Timers are throttled in the background: re-sync when the user is back.
  window.addEventListener("focus", syncTtl);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible") return;
    title.unread = 0;
    renderTitle();
    syncTtl();
    live.reconnectNow();
    scheduleRead();
  });
  el.scroller.addEventListener(
    "scroll",
    () => {
      stuck = isNearBottom();
      if (stuck) hideNewMessages();
      scheduleRead(); // reaching the newest messages is reading them
    },
    { passive: true },
  );
  // The on-screen keyboard (or a rotated phone) shrinks the list: the
  // newest message stays in view if it was.
  new ResizeObserver(() => {
    if (stuck) el.scroller.scrollTop = el.scroller.scrollHeight;
  }).observe(el.scroller);
  window.addEventListener("offline", wentOffline);
  window.addEventListener("online", cameOnline);
  window.addEventListener("pageshow", (e) => {
    if (!e.persisted) return;
    // Restored from the back/forward cache: the socket is gone.
    syncTtl();
    live.reconnectNow();
  });
  setInterval(syncTtl, TTL_SYNC_MS);
}

function start() {
  if (!roomId) {
    location.replace("/?error=room-not-found");
    return;
  }
  el.roomId.textContent = roomId;
  wireEvents();
  renderComposer();
  renderTitle();
  if (navigator.onLine === false) setConnStatus(t("networkOffline"));

  vault.purge().catch(() => {}); // rooms of this browser that have ended
  syncTtl();
  syncMessages();
  live.connect();
  // Only mention connecting if it is slow; a quick connect shows nothing.
  noticeHandle = setTimeout(() => {
    if (!live.open && !el.connStatus.textContent) setConnStatus(t("connecting"));
  }, CONNECTING_NOTICE_MS);
}

start();
