// Where the UI's files are, for the tests.
import { readFileSync } from "node:fs";

export const STATIC = new URL("../../services/gateway/internal/web/static/", import.meta.url);

export function readStatic(name) {
  return readFileSync(new URL(name, STATIC), "utf8");
}
