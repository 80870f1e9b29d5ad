/* Search and filter of the catalog. The index comes from search-index.js, loaded with a
   <script> tag: browsers refuse to load local JSON from file:// pages. Without JavaScript
   the page still shows the whole list. */
(function () {
  "use strict";
  var index = window.ARCHIVER_INDEX || [];
  var form = document.getElementById("filtres");
  var query = document.getElementById("recherche");
  var area = document.getElementById("domaine");
  var status = document.getElementById("etat");
  var none = document.getElementById("aucun");
  var cards = document.querySelectorAll("#catalogue > li");
  if (!form || !query || !area) { return; }

  function fold(text) {
    return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }
  var byId = {};
  index.forEach(function (item) { byId[item.id] = item; });

  function apply() {
    var words = fold(query.value).split(/\s+/).filter(Boolean);
    var wanted = area.value;
    var shown = 0;
    cards.forEach(function (card) {
      var item = byId[card.getAttribute("data-id")];
      var visible = !!item && (!wanted || item.area === wanted) &&
        words.every(function (word) { return item.text.indexOf(word) !== -1; });
      card.hidden = !visible;
      if (visible) { shown += 1; }
    });
    status.textContent = shown + (shown === 1 ? " vidéo" : " vidéos");
    none.hidden = shown !== 0;
  }

  form.hidden = false;
  form.addEventListener("submit", function (event) { event.preventDefault(); });
  query.addEventListener("input", apply);
  area.addEventListener("change", apply);
  apply();
}());
