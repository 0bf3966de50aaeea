// Shared by the home and room pages: the page's language, the anonymous
// identity, message ids and a JSON API helper that never throws.

import { dirOf, pickLocale, translator } from "./i18n.js";

const USERNAME_KEY = "chat_username";
const ANIMALS = ["wolf", "hawk", "bear", "shark", "fox", "owl", "lynx", "raven"];
const ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
const REQUEST_TIMEOUT_MS = 15000;

// Kept for the page's life when localStorage is unavailable (privacy modes),
// so the name at least stays the same within one page.
let memoryUsername = "";

/** The page's translator (i18n.js); English until localize() has run. */
export let t = translator("en");

/**
 * Picks the language from the browser's preferences, sets lang and dir on
 * <html> and puts the strings into the page: an element's data-i18n names
 * its text, data-i18n-attr its attributes ("placeholder:key,title:key").
 */
export function localize(doc = document, languages = navigator.languages ?? [navigator.language]) {
  const locale = pickLocale(languages);
  t = translator(locale);
  const html = doc.documentElement;
  html.lang = locale;
  html.dir = dirOf(locale);
  for (const node of doc.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of doc.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of node.dataset.i18nAttr.split(",")) {
      const [attr, key] = pair.split(":");
      node.setAttribute(attr.trim(), t(key.trim()));
    }
  }
  html.removeAttribute("data-i18n-pending");
  return locale;
}

/** Uniform random integer in [0, n) from the CSPRNG, without modulo bias. */
function randomInt(n) {
  const limit = Math.floor(0x100000000 / n) * n;
  const buf = new Uint32Array(1);
  do {
    crypto.getRandomValues(buf);
  } while (buf[0] >= limit);
  return buf[0] % n;
}

function generateUsername() {
  // 64 symbols: the low 6 bits of a random byte pick one uniformly.
  const bytes = crypto.getRandomValues(new Uint8Array(5));
  let suffix = "";
  for (const b of bytes) suffix += ID_ALPHABET[b & 63];
  return `anonymous-${ANIMALS[randomInt(ANIMALS.length)]}-${suffix}`;
}

/** The browser's anonymous name, created once and kept in localStorage. */
export function getUsername() {
  try {
    const stored = localStorage.getItem(USERNAME_KEY);
    if (stored) return stored;
  } catch {
    // Storage blocked: fall through to a per-page name.
  }
  if (!memoryUsername) memoryUsername = generateUsername();
  try {
    localStorage.setItem(USERNAME_KEY, memoryUsername);
  } catch {
    // Not persisted; the name just won't survive a reload.
  }
  return memoryUsername;
}

/**
 * A new message's clientId: 16 random bytes in base64url (22 characters of
 * A-Za-z0-9_-). A retry of the message reuses it, so the server stores the
 * message once however often it is sent.
 */
export function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function timeoutSignal(ms) {
  return typeof AbortSignal.timeout === "function" ? AbortSignal.timeout(ms) : undefined;
}

/** Human-readable reason for a failed response, preferring the API's {"error"}. */
function failureText(res, data) {
  let text = data && typeof data.error === "string" && data.error
    ? data.error
    : t("requestFailed", { status: res.status });
  const retry = res.status === 429 ? res.headers.get("Retry-After") : null;
  if (retry && /^\d+$/.test(retry)) text = t("tryAgainIn", { text, s: retry });
  return text;
}

/**
 * Calls the same-origin JSON API. Resolves to
 * {ok, status, data, error}; status is 0 when the server was not reached
 * (or did not answer within timeoutMs).
 */
export async function api(method, path, body, { timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
  const init = {
    method,
    credentials: "same-origin",
    cache: "no-store",
    headers: { Accept: "application/json" },
    signal: timeoutSignal(timeoutMs),
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }

  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    const timedOut = err && err.name === "TimeoutError";
    return {
      ok: false,
      status: 0,
      data: null,
      error: timedOut ? t("serverSlow") : t("networkError"),
    };
  }

  let data = null;
  try {
    data = await res.json();
  } catch {
    // Empty or non-JSON body (e.g. a proxy's error page).
  }
  if (res.ok) return { ok: true, status: res.status, data, error: "" };
  return { ok: false, status: res.status, data, error: failureText(res, data) };
}
