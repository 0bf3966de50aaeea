import { test } from "node:test";
import assert from "node:assert/strict";
import jsQR from "jsqr";

import { QUIET, qrMatrix, qrPath } from "../../services/gateway/internal/web/static/qr.js";

/** Rasterizes the SVG path the page draws (only "M x y h w v 1 h -w z" runs) at `scale` px a module. */
function rasterize(path, modules, scale = 4) {
  const size = (modules + 2 * QUIET) * scale;
  const rgba = new Uint8ClampedArray(size * size * 4).fill(255);
  for (const m of path.matchAll(/M(\d+) (\d+)h(\d+)v1h-\d+z/g)) {
    const [x, y, w] = [Number(m[1]), Number(m[2]), Number(m[3])];
    for (let py = y * scale; py < (y + 1) * scale; py++) {
      for (let px = x * scale; px < (x + w) * scale; px++) {
        const i = (py * size + px) * 4;
        rgba[i] = rgba[i + 1] = rgba[i + 2] = 0;
      }
    }
  }
  return { rgba, size };
}

function decode(text) {
  const matrix = qrMatrix(text);
  const { rgba, size } = rasterize(qrPath(matrix), matrix.length);
  return { matrix, code: jsQR(rgba, size, size) };
}

test("the room link's QR code, as the page draws it, reads back as the link", () => {
  for (const url of [
    "http://127.0.0.1:3000/room/V1StGXR8_Z5jdHi6B-myT",
    "https://wisp.example.org/room/abcdefghijklmnopqrstu",
    "https://a-rather-long-host-name.chat.example.com:8443/room/A_b-C_d-E_f-G_h-I_j-K",
  ]) {
    const { matrix, code } = decode(url);
    assert.ok(code, `${url}: not decodable`);
    assert.equal(code.data, url);
    assert.ok(matrix.length <= 41, `${url}: version ${(matrix.length - 17) / 4} is larger than a phone reads easily`);
  }
});

test("UTF-8 text survives (an internationalized path)", () => {
  const url = "https://example.org/room/ÄÖÜ-ß";
  assert.equal(decode(url).code?.data, url);
});

test("the path covers exactly the dark modules", () => {
  const matrix = qrMatrix("hello");
  let dark = 0;
  for (const row of matrix) for (const m of row) if (m) dark++;
  let drawn = 0;
  for (const m of qrPath(matrix).matchAll(/h(\d+)v1/g)) drawn += Number(m[1]);
  assert.equal(drawn, dark);
  assert.equal(matrix.length, 21, "a short text fits version 1");
  assert.ok(matrix[0][0] && matrix[0][6] && !matrix[0][7], "finder pattern in the top-left corner");
});
