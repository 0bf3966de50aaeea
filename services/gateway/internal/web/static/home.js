// Home page: the banners boot.js picked from the query string (announced
// and focused), the anonymous identity, the room's lifetime and CREATE
// SECURE ROOM.

import { api, getUsername, localize, t } from "./common.js";
import { IndexedDBVault } from "./vault.js";

const $ = (id) => document.getElementById(id);

const createButton = $("create");
const createError = $("create-error");
const lifetime = $("lifetime");

/**
 * The banners are on screen from the first paint (boot.js, CSS). Focus
 * goes to the first, so a screen reader reads why the person is here; the
 * title says it too; the flags leave the address bar so a refresh does not
 * show them again.
 */
function showBanners() {
  const shown = (document.documentElement.dataset.banners ?? "").split(" ").filter(Boolean);
  const first = shown.length ? document.querySelector(`.banner[data-banner="${shown[0]}"]`) : null;
  if (first) {
    document.title = `${first.querySelector(".banner-title").textContent} · ${t("homeTitle")}`;
    first.focus();
  }
  const url = new URL(location.href);
  if (url.searchParams.has("destroyed") || url.searchParams.has("error")) {
    url.searchParams.delete("destroyed");
    url.searchParams.delete("error");
    history.replaceState(history.state, "", url.pathname + url.search + url.hash);
  }
}

function labelLifetimes() {
  for (const option of lifetime.options) option.textContent = t("lifetimeMinutes", { n: option.dataset.minutes });
}

let creating = false;

function setCreating(on) {
  creating = on;
  createButton.disabled = on;
  if (on) createButton.setAttribute("aria-busy", "true");
  else createButton.removeAttribute("aria-busy");
}

async function createRoom() {
  if (creating) return; // one room per click, however fast the clicks come
  setCreating(true);
  createError.textContent = "";

  // Rooms made here are always end-to-end. The default lifetime (10 min)
  // sends no ttl: the server's own default (ROOM_TTL) applies.
  const ttl = Number(lifetime.value);
  const res = await api("POST", "/api/room/create", ttl > 0 ? { e2e: true, ttl } : { e2e: true });
  const roomId = res.ok && res.data && typeof res.data.roomId === "string" ? res.data.roomId : "";
  if (roomId) {
    // Stay disabled: the room page replaces this one.
    location.assign(`/room/${encodeURIComponent(roomId)}`);
    return;
  }
  createError.textContent = res.ok ? t("unexpectedAnswer") : res.error;
  setCreating(false);
}

localize();
// Keys of rooms that ended while no page of theirs was open go now.
if (typeof indexedDB === "object" && indexedDB) new IndexedDBVault().purge().catch(() => {});
labelLifetimes();
showBanners();
$("username").value = getUsername();
createButton.addEventListener("click", createRoom);
setCreating(false); // enabled only once the script runs

// Back from the room via the back/forward cache: the button must work again.
window.addEventListener("pageshow", (e) => {
  if (e.persisted) setCreating(false);
});
