// Home page: banners from the query string, the anonymous identity, and
// CREATE SECURE ROOM.

import { api, getUsername } from "./common.js";

const $ = (id) => document.getElementById(id);

const createButton = $("create");
const createError = $("create-error");

// Each query flag shows its own banner; several may show at once.
const BANNERS = [
  { param: "destroyed", value: "true", id: "banner-destroyed" },
  { param: "error", value: "room-not-found", id: "banner-not-found" },
  { param: "error", value: "room-full", id: "banner-full" },
];

function showBanners() {
  const url = new URL(location.href);
  let shown = false;
  for (const b of BANNERS) {
    if (url.searchParams.get(b.param) === b.value) {
      $(b.id).hidden = false;
      shown = true;
    }
  }
  $("banners").hidden = !shown;

  // Drop the flags from the address bar so a refresh does not show them again.
  if (url.searchParams.has("destroyed") || url.searchParams.has("error")) {
    url.searchParams.delete("destroyed");
    url.searchParams.delete("error");
    history.replaceState(history.state, "", url.pathname + url.search + url.hash);
  }
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

  const res = await api("POST", "/api/room/create");
  const roomId = res.ok && res.data && typeof res.data.roomId === "string" ? res.data.roomId : "";
  if (roomId) {
    // Stay disabled: the room page replaces this one.
    location.assign(`/room/${encodeURIComponent(roomId)}`);
    return;
  }
  createError.textContent = res.ok ? "Unexpected answer from the server." : res.error;
  setCreating(false);
}

showBanners();
$("username").value = getUsername();
createButton.addEventListener("click", createRoom);
setCreating(false); // enabled only once the script runs

// Back from the room via the back/forward cache: the button must work again.
window.addEventListener("pageshow", (e) => {
  if (e.persisted) setCreating(false);
});
