// Every string the UI shows or says, per language, and the choice of
// language from the browser's preferences. DOM-free: the pages apply the
// strings (common.js localize) and node --test checks them (ui/test).
//
// The pages' HTML carries the English text too, so that the first paint is
// already right for English readers; a test keeps each element's HTML text
// equal to its string here. English keeps the original app's wording.

/** @type {Record<string, Record<string, string>>} */
export const STRINGS = {
  en: {
    // Home page.
    homeTitle: "private_chat",
    tagline: "A private, self-destructing chat room.",
    bannerDestroyedTitle: "ROOM DESTROYED",
    bannerDestroyedText: "All messages were permanently deleted.",
    bannerNotFoundTitle: "ROOM NOT FOUND",
    bannerNotFoundText: "This room may have expired or never existed.",
    bannerFullTitle: "ROOM FULL",
    bannerFullText: "This room is at maximum capacity.",
    identityLabel: "Your Identity",
    lifetimeLabel: "Self-destruct after",
    lifetimeMinutes: "{n} min",
    create: "CREATE SECURE ROOM",
    unexpectedAnswer: "Unexpected answer from the server.",

    // Room page: header.
    roomTitle: "Room · private_chat",
    roomHeading: "Chat room",
    roomIdLabel: "Room ID",
    copy: "COPY",
    copied: "COPIED!",
    copyTitle: "Copy the room link",
    roomLink: "Room link",
    qr: "QR",
    qrTitle: "Show the room link as a QR code",
    qrHeading: "Room link as a QR code",
    qrHelp: "Scan it with the other person's phone camera to open this room. It is drawn here; nothing leaves the page.",
    close: "CLOSE",
    timerLabel: "Self-Destruct",
    peerLabel: "Peer",
    online: "online",
    offline: "offline",
    notify: "NOTIFY",
    notifyTitle: "Notify me of new messages while this tab is in the background (no message text is shown)",
    notifyBlocked: "Notifications are blocked for this site in the browser's settings.",
    notifyOn: "You will be notified of new messages while this tab is in the background.",
    notifyOff: "Notifications are off.",
    notificationTitle: "private_chat",
    notificationBody: "New message",
    destroyNow: "DESTROY NOW",

    // Room page: confirmation.
    confirmHeading: "Destroy this room?",
    confirmText: "All messages will be permanently deleted, for both of you. This cannot be undone.",
    cancel: "CANCEL",
    confirmDestroy: "DESTROY",

    // Room page: messages.
    messages: "Messages",
    empty: "No messages yet, start the conversation.",
    you: "YOU",
    typing: "typing…",
    newMessages: "↓ New messages",
    newMessagesCount: "↓ New messages ({n})",
    stateSending: "sending…",
    stateSent: "sent",
    stateRead: "read",
    stateFailed: "failed",
    retry: "RETRY",
    retryLabel: "Retry sending this message",
    notSentTitle: "Not sent: {reason}",

    // Room page: composer.
    messageLabel: "Message",
    placeholder: "Type message...",
    send: "SEND",
    composerHelp: "Enter sends, Shift+Enter starts a new line.",
    counter: "{n}/{max}",
    tooLong: "{n} characters too long: shorten the message to send it.",

    // Room page: connection and errors.
    connecting: "connecting…",
    reconnecting: "offline — reconnecting…",
    networkOffline: "You are offline. Messages wait and are sent once the network is back.",
    couldNotLoad: "Could not load messages: {why}",
    couldNotDestroy: "Could not destroy the room: {why}",
    unexpectedAnswerLower: "unexpected answer from the server.",
    noAnswer: "no answer from the server.",
    requestFailed: "Request failed (HTTP {status})",
    tooMany: "{reason} (too many messages: wait a moment)",
    networkError: "Network error: could not reach the server.",
    serverSlow: "The server took too long to answer.",
    tryAgainIn: "{text} (try again in {s} s)",

    // Room page: announcements.
    sayLinkCopied: "Room link copied.",
    sayCopyFailed: "Copy failed. The link is selected: press Ctrl+C to copy it.",
    sayPeerRead: "Peer read your message.",
    sayPeerReadMany: "Peer read your messages.",
    sayPeerTyping: "Peer is typing…",
    sayPeerOnline: "Peer is online.",
    sayPeerOffline: "Peer is offline.",
    saySent: "Message sent.",
    sayNotSent: "Message not sent: {reason}. Press RETRY to send it again.",
    sayWillResend: "Message not sent: {reason}. It is sent again once the connection is back.",
    sayOneMinute: "One minute left: the room self-destructs in 1:00.",
    sayTenSeconds: "10 seconds left: the room is about to self-destruct.",
    sayLeftMinutes: "{n} minutes left in this room.",
    // Room page: end-to-end encryption.
    e2eLabel: "Encryption",
    e2ePlain: "NOT end-to-end",
    e2eOff: "unavailable",
    e2eWaiting: "waiting for key…",
    e2eReady: "end-to-end",
    e2eVerifiedLink: "end-to-end ✓ link",
    e2eMismatch: "KEY MISMATCH",
    e2eTrusted: "trusted anyway",
    sasNone: "No safety code yet",
    sasLabel: "Safety code: {names}",
    sasTitle: "Safety code: the other person sees the same emoji. Compare them by phone or face to face.",
    e2eAlertTitle: "KEY MISMATCH: SOMEONE MAY BE LISTENING IN",
    e2eAlertHelp: "Compare the emoji in the header with the other person by phone or face to face. Sending is blocked until you choose.",
    e2eTrust: "THE EMOJI MATCH: TRUST THIS KEY",
    e2eDestroy: "DESTROY THE ROOM",
    e2eProblem_pin: "The key this page received is not the one the room link names.",
    e2eProblem_confirm: "The other person's page holds a different key for you than yours.",
    e2eProblem_changed: "The other person's key changed (another device, or someone in between).",
    e2eUnavailable: "End-to-end encryption is unavailable in this browser ({why}): nothing can be sent.",
    sayE2EMismatch: "Key mismatch: someone may be listening in. Sending is blocked until you choose.",
    sayE2EBlocked: "Not sent: the keys do not match. Compare the emoji, then choose.",
    sayE2ETrusted: "You trust this key. Messages are sent again.",
    sealedSender: "?",
    sealed_pending: "🔒 Waiting for the sender's key to read this message.",
    sealed_foreign: "🔒 Sealed for another device: it cannot be read here.",
    sealed_forged: "⚠ Rejected: this message was changed or comes from another room.",
    sealed_malformed: "⚠ Rejected: not a valid encrypted message.",
    sealed_replayed: "⚠ Rejected: a replayed copy of an earlier message.",
    sealed_reordered: "⚠ Rejected: this message is out of order.",
  },

  de: {
    homeTitle: "private_chat",
    tagline: "Ein privater Chatraum, der sich selbst zerstört.",
    bannerDestroyedTitle: "RAUM ZERSTÖRT",
    bannerDestroyedText: "Alle Nachrichten wurden endgültig gelöscht.",
    bannerNotFoundTitle: "RAUM NICHT GEFUNDEN",
    bannerNotFoundText: "Dieser Raum ist vielleicht abgelaufen oder hat nie existiert.",
    bannerFullTitle: "RAUM VOLL",
    bannerFullText: "Dieser Raum ist bereits voll besetzt.",
    identityLabel: "Deine Identität",
    lifetimeLabel: "Selbstzerstörung nach",
    lifetimeMinutes: "{n} Min.",
    create: "SICHEREN RAUM ERSTELLEN",
    unexpectedAnswer: "Unerwartete Antwort vom Server.",

    roomTitle: "Raum · private_chat",
    roomHeading: "Chatraum",
    roomIdLabel: "Raum-ID",
    copy: "KOPIEREN",
    copied: "KOPIERT!",
    copyTitle: "Den Link zum Raum kopieren",
    roomLink: "Link zum Raum",
    qr: "QR",
    qrTitle: "Den Link zum Raum als QR-Code zeigen",
    qrHeading: "Link zum Raum als QR-Code",
    qrHelp: "Mit der Handykamera der anderen Person scannen, um diesen Raum zu öffnen. Er wird hier gezeichnet; nichts verlässt die Seite.",
    close: "SCHLIESSEN",
    timerLabel: "Selbstzerstörung",
    peerLabel: "Gegenüber",
    online: "online",
    offline: "offline",
    notify: "BENACHRICHTIGEN",
    notifyTitle: "Bei neuen Nachrichten benachrichtigen, solange dieser Tab im Hintergrund ist (ohne Nachrichtentext)",
    notifyBlocked: "Benachrichtigungen sind für diese Seite in den Browser-Einstellungen blockiert.",
    notifyOn: "Du wirst über neue Nachrichten benachrichtigt, solange dieser Tab im Hintergrund ist.",
    notifyOff: "Benachrichtigungen sind aus.",
    notificationTitle: "private_chat",
    notificationBody: "Neue Nachricht",
    destroyNow: "JETZT ZERSTÖREN",

    confirmHeading: "Diesen Raum zerstören?",
    confirmText: "Alle Nachrichten werden für euch beide endgültig gelöscht. Das lässt sich nicht rückgängig machen.",
    cancel: "ABBRECHEN",
    confirmDestroy: "ZERSTÖREN",

    messages: "Nachrichten",
    empty: "Noch keine Nachrichten. Schreib die erste.",
    you: "DU",
    typing: "schreibt…",
    newMessages: "↓ Neue Nachrichten",
    newMessagesCount: "↓ Neue Nachrichten ({n})",
    stateSending: "wird gesendet…",
    stateSent: "gesendet",
    stateRead: "gelesen",
    stateFailed: "fehlgeschlagen",
    retry: "ERNEUT",
    retryLabel: "Diese Nachricht erneut senden",
    notSentTitle: "Nicht gesendet: {reason}",

    messageLabel: "Nachricht",
    placeholder: "Nachricht eingeben...",
    send: "SENDEN",
    composerHelp: "Enter sendet, Umschalt+Enter beginnt eine neue Zeile.",
    counter: "{n}/{max}",
    tooLong: "{n} Zeichen zu lang: kürze die Nachricht, um sie zu senden.",

    connecting: "verbinde…",
    reconnecting: "offline — verbinde neu…",
    networkOffline: "Du bist offline. Nachrichten warten und werden gesendet, sobald das Netz zurück ist.",
    couldNotLoad: "Nachrichten konnten nicht geladen werden: {why}",
    couldNotDestroy: "Der Raum konnte nicht zerstört werden: {why}",
    unexpectedAnswerLower: "unerwartete Antwort vom Server.",
    noAnswer: "keine Antwort vom Server.",
    requestFailed: "Anfrage fehlgeschlagen (HTTP {status})",
    tooMany: "{reason} (zu viele Nachrichten: einen Moment warten)",
    networkError: "Netzwerkfehler: der Server ist nicht erreichbar.",
    serverSlow: "Der Server hat zu lange nicht geantwortet.",
    tryAgainIn: "{text} (in {s} s erneut versuchen)",

    sayLinkCopied: "Link zum Raum kopiert.",
    sayCopyFailed: "Kopieren fehlgeschlagen. Der Link ist markiert: mit Strg+C kopieren.",
    sayPeerRead: "Dein Gegenüber hat deine Nachricht gelesen.",
    sayPeerReadMany: "Dein Gegenüber hat deine Nachrichten gelesen.",
    sayPeerTyping: "Dein Gegenüber schreibt…",
    sayPeerOnline: "Dein Gegenüber ist online.",
    sayPeerOffline: "Dein Gegenüber ist offline.",
    saySent: "Nachricht gesendet.",
    sayNotSent: "Nachricht nicht gesendet: {reason}. Mit ERNEUT noch einmal senden.",
    sayWillResend: "Nachricht nicht gesendet: {reason}. Sie wird erneut gesendet, sobald die Verbindung zurück ist.",
    sayOneMinute: "Noch eine Minute: der Raum zerstört sich in 1:00.",
    sayTenSeconds: "Noch 10 Sekunden: der Raum zerstört sich gleich.",
    sayLeftMinutes: "Noch {n} Minuten in diesem Raum.",
    e2eLabel: "Verschlüsselung",
    e2ePlain: "NICHT Ende-zu-Ende",
    e2eOff: "nicht verfügbar",
    e2eWaiting: "warte auf Schlüssel…",
    e2eReady: "Ende-zu-Ende",
    e2eVerifiedLink: "Ende-zu-Ende ✓ Link",
    e2eMismatch: "SCHLÜSSEL FALSCH",
    e2eTrusted: "trotzdem vertraut",
    sasNone: "Noch kein Sicherheitscode",
    sasLabel: "Sicherheitscode: {names}",
    sasTitle: "Sicherheitscode: die andere Person sieht dieselben Emoji. Vergleicht sie am Telefon oder persönlich.",
    e2eAlertTitle: "SCHLÜSSEL PASSEN NICHT: JEMAND LIEST VIELLEICHT MIT",
    e2eAlertHelp: "Vergleiche die Emoji oben mit der anderen Person, am Telefon oder persönlich. Senden ist gesperrt, bis du entscheidest.",
    e2eTrust: "DIE EMOJI STIMMEN: SCHLÜSSEL VERTRAUEN",
    e2eDestroy: "RAUM ZERSTÖREN",
    e2eProblem_pin: "Der Schlüssel, den diese Seite bekam, ist nicht der, den der Raum-Link nennt.",
    e2eProblem_confirm: "Die Seite der anderen Person hält einen anderen Schlüssel für dich als deinen.",
    e2eProblem_changed: "Der Schlüssel der anderen Person hat sich geändert (ein anderes Gerät, oder jemand dazwischen).",
    e2eUnavailable: "Ende-zu-Ende-Verschlüsselung ist in diesem Browser nicht verfügbar ({why}): nichts kann gesendet werden.",
    sayE2EMismatch: "Schlüssel passen nicht: jemand liest vielleicht mit. Senden ist gesperrt, bis du entscheidest.",
    sayE2EBlocked: "Nicht gesendet: die Schlüssel passen nicht. Vergleiche die Emoji, dann entscheide.",
    sayE2ETrusted: "Du vertraust diesem Schlüssel. Nachrichten werden wieder gesendet.",
    sealedSender: "?",
    sealed_pending: "🔒 Warte auf den Schlüssel des Absenders, um diese Nachricht zu lesen.",
    sealed_foreign: "🔒 Für ein anderes Gerät verschlüsselt: hier nicht lesbar.",
    sealed_forged: "⚠ Abgelehnt: diese Nachricht wurde verändert oder stammt aus einem anderen Raum.",
    sealed_malformed: "⚠ Abgelehnt: keine gültige verschlüsselte Nachricht.",
    sealed_replayed: "⚠ Abgelehnt: eine wiederholte Kopie einer früheren Nachricht.",
    sealed_reordered: "⚠ Abgelehnt: diese Nachricht kommt außer der Reihe.",
  },
};

export const DEFAULT_LOCALE = "en";

// Scripts written right to left; a locale of one of them gets dir="rtl".
const RTL = new Set(["ar", "fa", "he", "ps", "sd", "ug", "ur", "yi"]);

/**
 * The first of the reader's preferred languages (navigator.languages, most
 * wanted first) that the UI has, by its primary subtag ("de-AT" -> "de");
 * English when none is.
 */
export function pickLocale(preferred, available = Object.keys(STRINGS)) {
  for (const tag of preferred ?? []) {
    const primary = String(tag).toLowerCase().split(/[-_]/)[0];
    if (available.includes(primary)) return primary;
  }
  return DEFAULT_LOCALE;
}

/** "rtl" for a locale written right to left, else "ltr". */
export function dirOf(locale) {
  return RTL.has(String(locale).toLowerCase().split(/[-_]/)[0]) ? "rtl" : "ltr";
}

/**
 * The translator of one locale: t(key, {name: value}) fills {name}
 * placeholders. A key the locale lacks falls back to English, and an unknown
 * key is returned as itself (visible in a test rather than blank on a page).
 */
export function translator(locale) {
  const table = STRINGS[locale] ?? STRINGS[DEFAULT_LOCALE];
  return function t(key, vars) {
    const text = table[key] ?? STRINGS[DEFAULT_LOCALE][key] ?? key;
    if (!vars) return text;
    return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
  };
}
