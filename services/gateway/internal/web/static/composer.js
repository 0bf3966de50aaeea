// The composer's rules, DOM-free: how long a message may be (as the server
// counts it) and what Enter does.

/** The longest text the server stores, in UTF-16 code units (JS string length). */
export const MAX_LENGTH = 1000;

/** The counter of a draft: its length, how many are left, and whether it is over. */
export function counterState(text, max = MAX_LENGTH) {
  const length = text.length;
  return { length, left: max - length, over: length > max };
}

/** Whether a draft can be sent: something besides spaces, and not too long. */
export function canSend(text, max = MAX_LENGTH) {
  return text.trim() !== "" && text.length <= max;
}

/**
 * What a keydown does in the message box: "send" for Enter alone, "newline"
 * for Shift+Enter (the box's own behaviour), null for anything else. Enter
 * that ends an IME composition is the composition's, not a send.
 */
export function enterAction(e) {
  if (e.key !== "Enter" || e.isComposing || e.keyCode === 229) return null;
  if (e.shiftKey) return "newline";
  if (e.ctrlKey || e.altKey || e.metaKey) return null;
  return "send";
}
