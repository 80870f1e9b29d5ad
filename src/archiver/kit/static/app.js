/* Search and filter of the catalog. The index comes from search-index.js, loaded with a
   <script> tag: browsers refuse to load local JSON from file:// pages. Without JavaScript
   the page still shows the whole list.

   What is searched and the area chosen live in the address, after "#" (#q=ent&domaine=…):
   Back from a video page, a bookmark or a link sent to a colleague shows the same list, and
   the fields always say what the list shows. A "#", not a "?": pages opened from file://
   may change their fragment, not always their query. */
(function () {
  "use strict";
  var index = window.ARCHIVER_INDEX || [];
  var form = document.getElementById("filtres");
  var query = document.getElementById("recherche");
  var area = document.getElementById("domaine");
  var status = document.getElementById("etat");
  var none = document.getElementById("aucun");
  var groups = document.querySelectorAll("section.area");
  if (!form || !query || !area || !status) { return; }
  var total = parseInt(status.getAttribute("data-total"), 10) || 0;

  /* As pages.py folds the index: no accents, lowercase, ligatures spelt out, every
     apostrophe the one a keyboard types (l'ENT finds l’ENT). */
  var SPELT = { "œ": "oe", "æ": "ae", "ß": "ss", "ø": "o", "đ": "d", "ł": "l", "ı": "i",
    "’": "'", "‘": "'", "ʼ": "'", "′": "'", "`": "'", "´": "'", "\u00a0": " ", "\u202f": " " };
  var SPELT_RE = /[œæßøđłı’‘ʼ′`´\u00a0\u202f]/g;
  function fold(text) {
    return text.toLowerCase().replace(SPELT_RE, function (c) { return SPELT[c]; })
      .normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }
  function videos(count) { return count + (count < 2 ? " vidéo" : " vidéos"); }

  var byId = {};
  index.forEach(function (item) { byId[item.id] = item; });

  function apply() {
    var words = fold(query.value).split(/\s+/).filter(Boolean);
    var wanted = area.value;
    var shown = 0;
    groups.forEach(function (group) {
      var inGroup = 0;
      group.querySelectorAll("li.card").forEach(function (card) {
        var item = byId[card.getAttribute("data-id")];
        var visible = !!item && (!wanted || item.area === wanted) &&
          words.every(function (word) { return item.text.indexOf(word) !== -1; });
        card.hidden = !visible;
        if (visible) { inGroup += 1; }
      });
      group.hidden = inGroup === 0;
      var count = group.querySelector(".count");
      if (count) { count.textContent = "(" + videos(inGroup) + ")"; }
      shown += inGroup;
    });
    var filtered = words.length > 0 || wanted !== "";
    status.textContent = filtered ? videos(shown) + " sur " + total : videos(total);
    if (none) { none.hidden = shown !== 0; }
  }

  /* The address from the fields, replacing the current entry: typing makes no history. */
  function remember() {
    var parts = [];
    if (query.value.trim()) { parts.push("q=" + encodeURIComponent(query.value.trim())); }
    if (area.value) { parts.push("domaine=" + encodeURIComponent(area.value)); }
    var url = location.href.split("#")[0] + (parts.length ? "#" + parts.join("&") : "");
    if (url !== location.href) {
      try { history.replaceState(null, "", url); } catch (e) { /* an odd browser: no memory */ }
    }
  }

  /* The fields from the address: what a bookmark, Back or a restored tab shows. */
  function recall() {
    var found = { q: "", domaine: "" };
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      var at = part.indexOf("=");
      if (at < 0) { return; }
      var key = part.slice(0, at);
      if (!Object.prototype.hasOwnProperty.call(found, key)) { return; }
      try { found[key] = decodeURIComponent(part.slice(at + 1).replace(/\+/g, " ")); }
      catch (e) { found[key] = ""; }
    });
    query.value = found.q;
    var known = Array.prototype.some.call(area.options, function (o) {
      return o.value === found.domaine;
    });
    area.value = known ? found.domaine : "";
    apply();
  }

  function changed() { apply(); remember(); }

  form.hidden = false;
  form.addEventListener("submit", function (event) { event.preventDefault(); });
  query.addEventListener("input", changed);
  area.addEventListener("change", changed);
  window.addEventListener("hashchange", recall);
  /* Back may show this page from the browser's cache, its fields as a script or the browser
     left them: the address decides. */
  window.addEventListener("pageshow", recall);
  recall();
}());
