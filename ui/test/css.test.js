import { test } from "node:test";
import assert from "node:assert/strict";

import { readStatic } from "./static.js";

const css = readStatic("app.css").replace(/\/\*[\s\S]*?\*\//g, "");

test("the layout mirrors for right-to-left languages: no physical left/right", () => {
  const physical = /(^|[\s;{])(margin|padding|border)-(left|right)\b|(^|[\s;{])(left|right)\s*:|text-align:\s*(left|right)|float:\s*(left|right)/gm;
  const found = [...css.matchAll(physical)].map((m) => m[0].trim());
  assert.deepEqual(found, [], "use the logical -inline-start/-end properties");
});

test("words are not split in the middle: no break-all", () => {
  assert.ok(!/word-break:\s*break-all/.test(css));
});

test("the font is bundled, free, and not swapped in after the first paint", () => {
  const faces = [...css.matchAll(/@font-face\s*{([^}]*)}/g)].map((m) => m[1]);
  assert.ok(faces.length >= 2);
  for (const f of faces) {
    assert.match(f, /src:\s*url\("\/static\/fonts\/[^"]+\.woff2"\)/);
    assert.match(f, /font-display:\s*optional/);
  }
  assert.match(readStatic("fonts/OFL.txt"), /SIL Open Font License/);
});

test("forced-colours mode keeps borders and the focus ring", () => {
  const block = css.slice(css.indexOf("@media (forced-colors: active)"));
  assert.match(block, /border:\s*1px solid ButtonText/);
  assert.match(block, /outline:\s*3px solid Highlight/);
});

test("the message box is 16 px, so phones do not zoom on focus", () => {
  const rule = css.match(/\.message-input\s*{([^}]*)}/)[1];
  assert.match(rule, /font-size:\s*1rem/);
});
