// Click tracking for search results: on a click on <a data-click-product="ID" data-click-position="N">
// inside an element with data-impression="TOKEN", send the click with navigator.sendBeacon
// (it does not delay the navigation). Without JavaScript, links can point at the redirect
// endpoint /events/click/TOKEN/ID/ instead.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-click-product]");
    if (!link || !navigator.sendBeacon) return;
    var box = link.closest("[data-impression]");
    if (!box || !box.dataset.impression) return;
    var body = JSON.stringify({
      impression_id: box.dataset.impression,
      product_id: parseInt(link.dataset.clickProduct, 10),
      position: parseInt(link.dataset.clickPosition, 10)
    });
    navigator.sendBeacon("/events/click", new Blob([body], { type: "text/plain" }));
  }, true);
})();
