// Room page: countdown kept in step with the server, message list fed by a
// WebSocket (appended, de-duplicated, gaps back-filled), send, copy, destroy.

import { api, getUsername } from "./common.js";

const $ = (id) => document.getElementById(id);

const TTL_SYNC_MS = 30000;
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 10000;
const CONNECTING_NOTICE_MS = 2000;
const LOAD_RETRY_MS = 3000;
const COPIED_MS = 2000;
const NEAR_BOTTOM_PX = 64;
const OFFLINE_TEXT = "offline — reconnecting…";

const roomId = roomIdFromPath();
const roomQuery = `roomId=${encodeURIComponent(roomId)}`;
const username = getUsername();

const el = {
  roomId: $("room-id"),
  copy: $("copy"),
  shareUrl: $("share-url"),
  countdown: $("countdown"),
  destroy: $("destroy"),
  connStatus: $("conn-status"),
  announcer: $("announcer"),
  scroller: $("scroller"),
  empty: $("empty"),
  list: $("messages"),
  error: $("room-error"),
  form: $("composer"),
  input: $("message-input"),
  send: $("send"),
};

// Once true, the page is on its way to the home page: every async callback
// checks it so nothing re-renders or reconnects behind the navigation.
let leaving = false;

function roomIdFromPath() {
  const m = /^\/room\/([^/]+)\/?$/.exec(location.pathname);
  if (!m) return "";
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return "";
  }
}

/** The room is gone (destroyed, expired, or our membership is): go home. */
function leaveDestroyed() {
  if (leaving) return;
  leaving = true;
  closeSocket();
  location.replace("/?destroyed=true");
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

function announce(text) {
  el.announcer.textContent = "";
  // A fresh text node after a tick makes screen readers repeat identical text.
  setTimeout(() => (el.announcer.textContent = text), 50);
}

// ---------- Countdown ----------

const countdown = {
  endAt: null, // Date.now() time at which the room expires
  tickHandle: 0,
  ttlInFlight: false,
};

function remainingSeconds() {
  return Math.max(0, Math.ceil((countdown.endAt - Date.now()) / 1000));
}

function formatRemaining(s) {
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function renderCountdown() {
  clearTimeout(countdown.tickHandle);
  if (leaving || countdown.endAt === null) return;

  const s = remainingSeconds();
  el.countdown.textContent = formatRemaining(s);
  el.countdown.classList.toggle("is-urgent", s < 60);
  if (s === 0) {
    leaveDestroyed();
    return;
  }
  // Wake just after the shown second changes. The value is always derived
  // from the absolute end time, so throttled timers never make it drift.
  const msLeft = countdown.endAt - Date.now();
  const untilNext = msLeft - (s - 1) * 1000;
  countdown.tickHandle = setTimeout(renderCountdown, Math.min(1000, Math.max(20, untilNext + 10)));
}

function applyTtl(ttlSeconds) {
  const endAt = Date.now() + ttlSeconds * 1000;
  // Ignore sub-second differences (whole-second TTL plus latency) so the
  // display does not tick backwards on every sync.
  if (countdown.endAt === null || Math.abs(endAt - countdown.endAt) >= 1000) {
    countdown.endAt = endAt;
  }
  renderCountdown();
}

async function syncTtl() {
  if (leaving || countdown.ttlInFlight) return;
  countdown.ttlInFlight = true;
  const res = await api("GET", `/api/room/ttl?${roomQuery}`);
  countdown.ttlInFlight = false;
  if (leaving || roomGone(res)) return;
  if (res.ok && res.data && Number.isFinite(res.data.ttl)) applyTtl(Math.max(0, res.data.ttl));
  // Other failures (network blips) keep the local countdown running.
}

// ---------- Messages ----------

const store = {
  entries: [], // {msg, node}, ordered by seq
  byId: new Map(), // id -> entry
  seqs: new Set(),
  syncedSeq: 0, // every message with seq <= syncedSeq is known to be here
  loaded: false, // the first full load succeeded
};

function isOwn(msg) {
  return typeof msg.token === "string" && msg.token !== "";
}

function formatTime(ms) {
  if (!Number.isFinite(ms)) return "";
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function renderSender(node, msg) {
  const own = isOwn(msg);
  node.textContent = own ? "YOU" : String(msg.sender ?? "");
  node.classList.toggle("is-you", own);
}

// Text only ever goes in through textContent: chat text is never markup.
function renderMessage(msg) {
  const item = document.createElement("div");
  item.className = "msg";

  const head = document.createElement("div");
  head.className = "msg-head";
  const sender = document.createElement("span");
  sender.className = "msg-sender";
  renderSender(sender, msg);
  const time = document.createElement("time");
  time.className = "msg-time";
  time.textContent = formatTime(msg.timestamp);
  if (time.textContent) time.dateTime = new Date(msg.timestamp).toISOString();
  head.append(sender, time);

  const text = document.createElement("p");
  text.className = "msg-text";
  text.textContent = String(msg.text ?? "");

  item.append(head, text);
  return item;
}

function isMessage(m) {
  return m !== null && typeof m === "object" && typeof m.id === "string" && m.id !== "";
}

function seqOf(msg) {
  return Number.isFinite(msg.seq) ? msg.seq : Number.MAX_SAFE_INTEGER;
}

/** Adds one message in seq order; returns true when it was new. */
function upsertMessage(msg) {
  const known = store.byId.get(msg.id);
  if (known) {
    // Same message from the POST reply and the socket: keep the one
    // carrying our token, so it stays labelled YOU.
    if (isOwn(msg) && !isOwn(known.msg)) {
      known.msg = msg;
      renderSender(known.node.querySelector(".msg-sender"), msg);
    }
    return false;
  }

  const entry = { msg, node: renderMessage(msg) };
  const seq = seqOf(msg);
  let i = store.entries.length;
  while (i > 0 && seqOf(store.entries[i - 1].msg) > seq) i--; // usually appends
  const before = store.entries[i] ? store.entries[i].node : null;
  store.entries.splice(i, 0, entry);
  store.byId.set(msg.id, entry);
  el.list.insertBefore(entry.node, before);

  if (Number.isFinite(msg.seq)) {
    store.seqs.add(msg.seq);
    while (store.seqs.has(store.syncedSeq + 1)) store.syncedSeq++;
  }
  return true;
}

function isNearBottom() {
  const s = el.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
}

function scrollToBottom() {
  el.scroller.scrollTop = el.scroller.scrollHeight;
}

/** Runs a layout change (a status line appearing...) without losing the newest message from view. */
function keepBottom(change) {
  const stick = isNearBottom();
  change();
  if (stick) scrollToBottom();
}

function renderEmptyState() {
  el.empty.hidden = !(store.loaded && store.entries.length === 0);
}

/**
 * Adds messages and keeps the view at the newest one when the reader was
 * already there (or always, for one's own message or the first load).
 */
function addMessages(list, { forceScroll = false } = {}) {
  const stick = forceScroll || isNearBottom();
  let added = false;
  for (const msg of list) {
    if (isMessage(msg) && upsertMessage(msg)) added = true;
  }
  renderEmptyState();
  if (stick && (added || forceScroll)) scrollToBottom();
}

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
  const after = !first && store.syncedSeq > 0 ? `&after=${store.syncedSeq}` : "";
  const res = await api("GET", `/api/messages?${roomQuery}${after}`);
  if (leaving || roomGone(res)) return false;

  const list = res.ok && res.data && Array.isArray(res.data.messages) ? res.data.messages : null;
  if (!list) {
    const why = res.ok ? "unexpected answer from the server." : res.error;
    showError("load", `Could not load messages: ${why}`);
    sync.retryHandle = setTimeout(syncMessages, LOAD_RETRY_MS);
    return false;
  }

  clearError("load");
  store.loaded = true;
  el.list.removeAttribute("aria-busy");
  addMessages(list, { forceScroll: first });
  // The server answered with everything after our mark: we are complete
  // up to the newest seq it returned.
  for (const m of list) {
    if (isMessage(m) && Number.isFinite(m.seq) && m.seq > store.syncedSeq) store.syncedSeq = m.seq;
  }
  return true;
}

// ---------- Realtime ----------

const live = {
  socket: null,
  attempt: 0,
  retryHandle: 0,
  noticeHandle: 0,
};

function setConnStatus(text) {
  clearTimeout(live.noticeHandle);
  if (el.connStatus.textContent !== text) keepBottom(() => (el.connStatus.textContent = text));
}

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/api/realtime?${roomQuery}`;
}

function connect() {
  clearTimeout(live.retryHandle);
  if (leaving || live.socket) return;

  let socket;
  try {
    socket = new WebSocket(socketUrl());
  } catch {
    scheduleReconnect();
    return;
  }
  live.socket = socket;

  socket.addEventListener("open", () => {
    if (live.socket !== socket) return;
    live.attempt = 0;
    setConnStatus("");
    // Catch up on anything sent while we were not subscribed.
    syncMessages();
  });
  socket.addEventListener("message", (e) => {
    if (live.socket === socket) handleFrame(e.data);
  });
  socket.addEventListener("close", () => {
    if (live.socket !== socket) return;
    live.socket = null;
    if (leaving) return;
    setConnStatus(OFFLINE_TEXT);
    // A refused upgrade looks like any other close; the TTL endpoint tells
    // whether the room (or our membership) is gone.
    syncTtl();
    scheduleReconnect();
  });
}

function scheduleReconnect() {
  if (leaving) return;
  clearTimeout(live.retryHandle);
  const base = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** live.attempt);
  live.attempt++;
  // Jitter spreads out reconnects when a server restart drops everyone.
  const delay = base / 2 + Math.random() * (base / 2);
  live.retryHandle = setTimeout(connect, delay);
}

/** Reconnect right away (network back, tab visible again). */
function reconnectNow() {
  if (leaving || live.socket) return;
  live.attempt = 0;
  connect();
}

function closeSocket() {
  clearTimeout(live.retryHandle);
  const socket = live.socket;
  live.socket = null;
  if (socket) socket.close(1000);
}

function handleFrame(raw) {
  let frame;
  try {
    frame = JSON.parse(raw);
  } catch {
    return; // not ours to interpret
  }
  if (!frame || typeof frame !== "object") return;

  if (frame.event === "chat.destroy") {
    leaveDestroyed();
  } else if (frame.event === "chat.message" && isMessage(frame.data)) {
    const msg = frame.data;
    // A seq beyond the next expected one means we missed something.
    const gap = store.loaded && Number.isFinite(msg.seq) && msg.seq > store.syncedSeq + 1;
    addMessages([msg]);
    if (gap) syncMessages();
  }
}

// ---------- Send ----------

let sending = false;

function updateSendButton() {
  el.send.disabled = sending || el.input.value.trim() === "";
}

async function sendMessage() {
  const text = el.input.value;
  if (leaving || sending || text.trim() === "") return;

  sending = true;
  el.form.setAttribute("aria-busy", "true");
  updateSendButton();
  const res = await api("POST", `/api/messages?${roomQuery}`, { sender: username, text });
  sending = false;
  el.form.removeAttribute("aria-busy");
  if (leaving || roomGone(res)) return;

  if (res.ok) {
    clearError("send");
    // Only clear what was sent; text typed meanwhile stays.
    if (el.input.value === text) el.input.value = "";
    const msg = res.data && res.data.message;
    if (isMessage(msg)) addMessages([msg], { forceScroll: true });
    else syncMessages();
  } else {
    // Keep the text so nothing typed is lost, and say why.
    showError("send", `Message not sent: ${res.error}`);
  }
  updateSendButton();
  el.input.focus();
}

// ---------- Copy and destroy ----------

let copiedHandle = 0;

function flashCopied() {
  clearTimeout(copiedHandle);
  el.copy.textContent = "COPIED!";
  announce("Room link copied.");
  copiedHandle = setTimeout(() => (el.copy.textContent = "COPY"), COPIED_MS);
}

/** Old-style copy through a selected input, for non-secure contexts. */
function copyViaSelection(text) {
  el.shareUrl.value = text;
  el.shareUrl.hidden = false;
  el.shareUrl.focus();
  el.shareUrl.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  return ok;
}

async function copyLink() {
  const href = location.href;
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
    announce("Copy failed. The link is selected: press Ctrl+C to copy it.");
  }
}

let destroying = false;

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
  showError("destroy", `Could not destroy the room: ${res.error}`);
  destroying = false;
  el.destroy.disabled = false;
  el.destroy.removeAttribute("aria-busy");
}

// ---------- Wiring ----------

function wireEvents() {
  el.input.addEventListener("input", updateSendButton);
  el.form.addEventListener("submit", (e) => {
    e.preventDefault(); // never a real form submission
    sendMessage();
  });
  el.copy.addEventListener("click", copyLink);
  el.destroy.addEventListener("click", destroyRoom);

  // Timers are throttled in the background: re-sync when the user is back.
  window.addEventListener("focus", syncTtl);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible") return;
    syncTtl();
    reconnectNow();
  });
  window.addEventListener("online", reconnectNow);
  window.addEventListener("pageshow", (e) => {
    if (!e.persisted) return;
    // Restored from the back/forward cache: the socket is gone.
    syncTtl();
    reconnectNow();
  });
  setInterval(syncTtl, TTL_SYNC_MS);
}

function start() {
  if (!roomId) {
    location.replace("/?error=room-not-found");
    return;
  }
  el.roomId.textContent = roomId;
  el.list.setAttribute("aria-busy", "true");
  wireEvents();
  updateSendButton();

  syncTtl();
  syncMessages();
  connect();
  // Only mention connecting if it is slow; a quick connect shows nothing.
  live.noticeHandle = setTimeout(() => {
    if (!live.socket || live.socket.readyState !== WebSocket.OPEN) {
      if (!el.connStatus.textContent) setConnStatus("connecting…");
    }
  }, CONNECTING_NOTICE_MS);
}

start();
