// Click tracking for search results. Inside an element with data-impression="TOKEN" (and
// data-offset="N", the position before the page's first result), a click on a link to a
// product page (/p/ID/) or on <a data-click-product="ID" data-click-position="N"> is sent with
// navigator.sendBeacon, which does not delay the navigation. Without JavaScript, links can point
// at the redirect endpoint /events/click/TOKEN/ID/ instead.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    if (!navigator.sendBeacon || !event.target.closest) return;
    var link = event.target.closest("a");
    var box = link && link.closest("[data-impression]");
    if (!box || !box.dataset.impression) return;
    var id = link.dataset.clickProduct;
    var position = link.dataset.clickPosition;
    if (!id) {
      var match = (link.getAttribute("href") || "").match(/\/p\/(\d+)\/?$/);
      if (!match) return;
      id = match[1];
      var cards = Array.prototype.slice.call(box.children);
      var card = cards.filter(function (c) { return c.contains(link); })[0];
      position = parseInt(box.dataset.offset || "0", 10) + cards.indexOf(card) + 1;
    }
    var body = JSON.stringify({ impression_id: box.dataset.impression, product_id: parseInt(id, 10), position: parseInt(position, 10) });
    navigator.sendBeacon("/events/click", new Blob([body], { type: "text/plain" }));
  }, true);
})();
