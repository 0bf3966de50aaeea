import { test } from "node:test";
import assert from "node:assert/strict";

import { MAX_LENGTH, canSend, counterState, enterAction } from "../../services/gateway/internal/web/static/composer.js";

test("the limit is the server's: 1000 UTF-16 code units", () => {
  assert.equal(MAX_LENGTH, 1000);
  assert.deepEqual(counterState("x".repeat(1000)), { length: 1000, left: 0, over: false });
  assert.deepEqual(counterState("x".repeat(1200)), { length: 1200, left: -200, over: true });
  assert.equal(counterState("👍").length, 2, "an emoji outside the BMP is two units, as the server counts");
});

test("a draft can be sent when it has more than spaces and fits", () => {
  assert.equal(canSend(""), false);
  assert.equal(canSend(" \n\t"), false);
  assert.equal(canSend("  hi  "), true);
  assert.equal(canSend("x".repeat(1000)), true);
  assert.equal(canSend("x".repeat(1001)), false, "a long paste is not cut silently: it cannot go until shortened");
});

test("Enter sends, Shift+Enter is a new line, IME and modified Enter are left alone", () => {
  assert.equal(enterAction({ key: "Enter" }), "send");
  assert.equal(enterAction({ key: "Enter", shiftKey: true }), "newline");
  assert.equal(enterAction({ key: "Enter", isComposing: true }), null);
  assert.equal(enterAction({ key: "Enter", keyCode: 229 }), null);
  assert.equal(enterAction({ key: "Enter", ctrlKey: true }), null);
  assert.equal(enterAction({ key: "a" }), null);
});
