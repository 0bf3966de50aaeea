// Runs before the page is painted (a classic script in <head>, not a
// module): what the first paint must already know, so nothing moves after.
// - data-banners: the home page's banners asked for by the query string
//   (CSS shows them), so they do not push the page down once scripts run.
// - data-i18n-pending: the reader prefers another language than English,
//   the language of the HTML; the page stays unpainted until common.js has
//   put its strings in (a stylesheet rule reveals it after 3 s regardless).
(function () {
  var html = document.documentElement;
  var langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
  if (!/^en(-|_|$)/i.test(String(langs[0]))) html.setAttribute("data-i18n-pending", "");

  var query = new URLSearchParams(location.search);
  var banners = [];
  if (query.get("destroyed") === "true") banners.push("destroyed");
  if (query.get("error") === "room-not-found") banners.push("not-found");
  if (query.get("error") === "room-full") banners.push("full");
  if (banners.length) html.setAttribute("data-banners", banners.join(" "));
})();
