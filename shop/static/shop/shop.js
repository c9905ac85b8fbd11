// Bazaar storefront: photo picking (submits on choice) and drag-and-drop, sort on change, product gallery.
// Everything here is an enhancement: without JavaScript the forms and links work as they are.
(function () {
  "use strict";

  var headerForm = document.querySelector("#header-photo-form");
  var overlay = document.querySelector("[data-drop-overlay]");
  var busy = document.querySelector("[data-photo-busy]");

  function showBusy() {
    if (busy) busy.hidden = false;
  }

  // Page shown again from the back/forward cache: never leave the spinner up.
  window.addEventListener("pageshow", function () {
    if (busy) busy.hidden = true;
  });

  function setFiles(input, files) {
    try {
      var transfer = new DataTransfer();
      transfer.items.add(files[0]);
      input.files = transfer.files;
      return true;
    } catch (err) {
      return false; // very old browsers: fall back to the file picker
    }
  }

  // The photo picker (header camera and photo panel alike): choosing a file searches at once.
  // A form's file input may sit elsewhere in the page (form="..."), so look it up in form.elements.
  function fileInput(form) {
    return Array.prototype.find.call(form.elements, function (el) { return el.type === "file"; });
  }
  function submitPhoto(form) {
    var source = form.getAttribute("data-words-from");
    if (source && document.querySelector(source)) {
      form.querySelector("input[name=q]").value = document.querySelector(source).value;
    }
    showBusy();
    form.submit();
  }
  document.querySelectorAll("form[data-photo-picker]").forEach(function (form) {
    var input = fileInput(form);
    if (!input) return;
    input.addEventListener("change", function () {
      if (input.files && input.files.length) submitPhoto(form);
    });
  });

  // Drop zones (home page, error page): a dropped photo searches at once; a click anywhere opens the picker.
  document.querySelectorAll("[data-dropzone]").forEach(function (zone) {
    var form = zone.closest("form");
    var input = form ? fileInput(form) : null;
    if (!input) return;
    zone.addEventListener("click", function (event) {
      if (!event.target.closest("label, input")) input.click();
    });
    zone.addEventListener("dragover", function (event) {
      event.preventDefault();
      event.stopPropagation();
      zone.classList.add("is-over");
    });
    zone.addEventListener("dragleave", function () {
      zone.classList.remove("is-over");
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      event.stopPropagation();
      zone.classList.remove("is-over");
      hideOverlay();
      if (event.dataTransfer.files.length && setFiles(input, event.dataTransfer.files)) submitPhoto(form);
    });
  });
  document.querySelectorAll("[data-dropzone-form]").forEach(function (form) {
    form.addEventListener("submit", showBusy);
  });

  // "Add words" on the photo chip: the header search box keeps the photo, so type there.
  document.querySelectorAll("[data-focus-search]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      var box = document.querySelector("#header-q");
      if (!box) return;
      event.preventDefault();
      box.focus();
      box.select();
    });
  });

  // Dropping a photo anywhere else on the page searches by it straight away.
  var depth = 0;
  function hasFiles(event) {
    return event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") !== -1;
  }
  function hideOverlay() {
    depth = 0;
    if (overlay) overlay.hidden = true;
  }
  window.addEventListener("dragenter", function (event) {
    if (!hasFiles(event) || !overlay) return;
    depth += 1;
    overlay.hidden = false;
  });
  window.addEventListener("dragleave", function (event) {
    if (!hasFiles(event)) return;
    depth -= 1;
    if (depth <= 0) hideOverlay();
  });
  window.addEventListener("dragover", function (event) {
    if (hasFiles(event)) event.preventDefault();
  });
  window.addEventListener("drop", function (event) {
    if (!hasFiles(event)) return;
    event.preventDefault();
    hideOverlay();
    var input = headerForm ? fileInput(headerForm) : null;
    if (input && event.dataTransfer.files.length && setFiles(input, event.dataTransfer.files)) submitPhoto(headerForm);
  });

  // Sort: apply on change (the noscript button does it without JavaScript).
  document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
    select.addEventListener("change", function () {
      select.form.submit();
    });
  });

  // Filters start folded on narrow screens.
  var filters = document.querySelector("[data-filters]");
  if (filters && window.matchMedia("(max-width: 960px)").matches) filters.open = false;
  if (filters) {
    filters.querySelector("summary").addEventListener("click", function (event) {
      if (!window.matchMedia("(max-width: 960px)").matches) event.preventDefault();
    });
  }

  // Product gallery: thumbnails swap the main photo.
  var main = document.querySelector("[data-gallery-main]");
  document.querySelectorAll("[data-gallery-thumb]").forEach(function (thumb) {
    thumb.addEventListener("click", function (event) {
      if (!main) return;
      event.preventDefault();
      main.src = thumb.getAttribute("href");
      document.querySelectorAll("[data-gallery-thumb]").forEach(function (t) {
        t.classList.toggle("is-current", t === thumb);
      });
    });
  });
})();
