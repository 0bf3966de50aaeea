// ESLint for the build-free UI (services/gateway/internal/web/static) and
// its node tests. Run with `make lint-js`.
import js from "@eslint/js";
import globals from "globals";

// Run from the repository root (make lint-js): patterns are relative to it.
const STATIC = "services/gateway/internal/web/static";
const UI = "ui";

export default [
  {
    ...js.configs.recommended,
    files: [`${STATIC}/**/*.js`],
    languageOptions: { ecmaVersion: 2024, sourceType: "module", globals: { ...globals.browser } },
  },
  {
    files: [`${STATIC}/boot.js`],
    languageOptions: { sourceType: "script" },
  },
  {
    ...js.configs.recommended,
    files: [`${UI}/test/**/*.js`, `${UI}/eslint.config.js`],
    languageOptions: { ecmaVersion: 2024, sourceType: "module", globals: { ...globals.node } },
  },
  {
    files: [`${STATIC}/**/*.js`, `${UI}/test/**/*.js`],
    rules: {
      "no-unused-vars": ["error", { argsIgnorePattern: "^_", caughtErrors: "none" }],
      eqeqeq: ["error", "always"],
      "no-implicit-globals": "error",
      "no-restricted-properties": [
        "error",
        { property: "innerHTML", message: "Chat text must never reach the DOM as markup: use textContent." },
        { property: "outerHTML", message: "Chat text must never reach the DOM as markup." },
        { property: "insertAdjacentHTML", message: "Chat text must never reach the DOM as markup." },
      ],
      "no-eval": "error",
      "no-new-func": "error",
      "prefer-const": "error",
      "no-var": "off",
    },
  },
];
