import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";

import { STRINGS, dirOf, pickLocale, translator } from "../../services/gateway/internal/web/static/i18n.js";
import { STATIC, readStatic } from "./static.js";

const placeholders = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test("every language has every English string, with the same placeholders", () => {
  const en = STRINGS.en;
  for (const [locale, table] of Object.entries(STRINGS)) {
    assert.deepEqual(Object.keys(table).sort(), Object.keys(en).sort(), `${locale} has other keys than en`);
    for (const [key, text] of Object.entries(table)) {
      assert.equal(typeof text, "string");
      assert.notEqual(text.trim(), "", `${locale}.${key} is empty`);
      assert.deepEqual(placeholders(text), placeholders(en[key]), `${locale}.${key} placeholders`);
    }
  }
  assert.ok(Object.keys(STRINGS).length >= 2, "English and at least one more language");
});

test("the language follows the browser's preferences, English when none is known", () => {
  assert.equal(pickLocale(["de-DE", "en"]), "de");
  assert.equal(pickLocale(["fr-FR", "de-AT"]), "de");
  assert.equal(pickLocale(["en-GB", "de"]), "en");
  assert.equal(pickLocale(["fr", "it"]), "en");
  assert.equal(pickLocale([]), "en");
  assert.equal(pickLocale(undefined), "en");
  assert.equal(pickLocale(["DE_ch"]), "de");
});

test("direction: right-to-left scripts get rtl", () => {
  assert.equal(dirOf("ar"), "rtl");
  assert.equal(dirOf("he-IL"), "rtl");
  assert.equal(dirOf("de"), "ltr");
  assert.equal(dirOf("en"), "ltr");
});

test("the translator fills placeholders and falls back to English", () => {
  const de = translator("de");
  assert.equal(de("counter", { n: 3, max: 1000 }), "3/1000");
  assert.equal(de("you"), "DU");
  assert.equal(translator("xx")("you"), "YOU");
  assert.equal(de("no-such-key"), "no-such-key");
  assert.equal(translator("en")("tooMany", { reason: "Slow down" }), "Slow down (too many messages: wait a moment)");
});

test("the original's strings stay the English ones", () => {
  const en = STRINGS.en;
  const want = {
    bannerDestroyedTitle: "ROOM DESTROYED", bannerDestroyedText: "All messages were permanently deleted.",
    bannerNotFoundTitle: "ROOM NOT FOUND", bannerNotFoundText: "This room may have expired or never existed.",
    bannerFullTitle: "ROOM FULL", bannerFullText: "This room is at maximum capacity.",
    tagline: "A private, self-destructing chat room.", identityLabel: "Your Identity", create: "CREATE SECURE ROOM",
    roomIdLabel: "Room ID", copy: "COPY", copied: "COPIED!", timerLabel: "Self-Destruct", destroyNow: "DESTROY NOW",
    empty: "No messages yet, start the conversation.", placeholder: "Type message...", send: "SEND", you: "YOU",
  };
  for (const [key, text] of Object.entries(want)) assert.equal(en[key], text, key);
});

const PAGES = ["index.html", "room.html"];

/** Elements of a page with data-i18n / data-i18n-attr, with their HTML text and attributes. */
function localized(html) {
  const out = [];
  for (const m of html.matchAll(/<(\w+)(\s[^>]*?\bdata-i18n(?:-attr)?="[^"]*"[^>]*)>([^<]*)/g)) {
    const attrs = Object.fromEntries([...m[2].matchAll(/([\w-]+)="([^"]*)"/g)].map((a) => [a[1], a[2]]));
    out.push({ tag: m[1], attrs, text: m[3] });
  }
  return out;
}

const unescape = (s) => s.replace(/&gt;/g, ">").replace(/&lt;/g, "<").replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&amp;/g, "&");

test("the pages' English text is i18n.js's: one place for every string", () => {
  let checked = 0;
  for (const page of PAGES) {
    const html = readStatic(page);
    for (const { tag, attrs, text } of localized(html)) {
      if (attrs["data-i18n"]) {
        assert.ok(attrs["data-i18n"] in STRINGS.en, `${page}: unknown key ${attrs["data-i18n"]}`);
        assert.equal(unescape(text), STRINGS.en[attrs["data-i18n"]], `${page} <${tag} data-i18n="${attrs["data-i18n"]}">`);
        checked++;
      }
      for (const pair of (attrs["data-i18n-attr"] ?? "").split(",").filter(Boolean)) {
        const [attr, key] = pair.split(":");
        assert.ok(key in STRINGS.en, `${page}: unknown key ${key}`);
        assert.equal(unescape(attrs[attr] ?? ""), STRINGS.en[key], `${page} <${tag}> ${attr}`);
        checked++;
      }
    }
  }
  assert.ok(checked > 30, `only ${checked} strings checked`);
});

test("every t(\"key\") in the scripts exists", () => {
  const scripts = readdirSync(STATIC).filter((f) => f.endsWith(".js"));
  for (const file of scripts) {
    for (const m of readStatic(file).matchAll(/\bt\("(\w+)"/g)) {
      assert.ok(m[1] in STRINGS.en, `${file}: t("${m[1]}") has no string`);
    }
  }
});

test("the scripts show no English of their own: text goes through t()", () => {
  // Quoted words of three letters or more in capitals, or sentences, outside i18n.js.
  const scripts = readdirSync(STATIC).filter((f) => f.endsWith(".js") && f !== "i18n.js");
  for (const file of scripts) {
    const src = readStatic(file).replace(/^\s*(\/\/|\*|\/\*).*$/gm, "").replace(/\s\/\/ .*$/gm, "");
    for (const m of src.matchAll(/"([^"\n]*)"/g)) {
      const s = m[1];
      const sentence = /^[A-Z][a-z]+( [a-z]+){2,}/.test(s);
      const shout = /^[A-Z]{3,}[ !A-Z]*$/.test(s) && !["GET", "POST", "DELETE", "OPEN", "ECDH", "HKDF"].includes(s);
      assert.ok(!sentence && !shout, `${file}: "${s}" looks like UI text outside i18n.js`);
    }
  }
});
