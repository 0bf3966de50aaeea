// A QR code of a text (the room link), drawn in the page: the matrix comes
// from the vendored qrcode-generator (MIT, vendor/qrcode.mjs), the drawing is
// one SVG path. DOM-free; nothing leaves the page.

import qrcode from "./vendor/qrcode.mjs";

/** The UTF-8 bytes of text as a string of char codes 0-255 (the library's byte mode). */
function utf8Binary(text) {
  let out = "";
  for (const b of new TextEncoder().encode(text)) out += String.fromCharCode(b);
  return out;
}

/**
 * The modules of the QR code of text (error correction M, the smallest
 * version that fits): rows of booleans, true for dark.
 */
export function qrMatrix(text) {
  const qr = qrcode(0, "M");
  qr.addData(utf8Binary(text), "Byte");
  qr.make();
  const n = qr.getModuleCount();
  const rows = [];
  for (let r = 0; r < n; r++) {
    const row = [];
    for (let c = 0; c < n; c++) row.push(qr.isDark(r, c));
    rows.push(row);
  }
  return rows;
}

/** The QUIET zone around the code, in modules (the standard asks for 4). */
export const QUIET = 4;

/**
 * An SVG path of the dark modules, one unit per module, offset by the quiet
 * zone: a viewBox of size+2*QUIET shows the whole code. Runs of dark modules
 * in a row are one rectangle each.
 */
export function qrPath(matrix) {
  const parts = [];
  matrix.forEach((row, r) => {
    let c = 0;
    while (c < row.length) {
      if (!row[c]) {
        c++;
        continue;
      }
      let end = c;
      while (end < row.length && row[end]) end++;
      parts.push(`M${c + QUIET} ${r + QUIET}h${end - c}v1h${c - end}z`);
      c = end;
    }
  });
  return parts.join("");
}
