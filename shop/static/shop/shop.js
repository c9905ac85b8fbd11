// Bazaar storefront: photo picking and drag-and-drop, sort on change, product gallery.
// Everything here is an enhancement: without JavaScript the forms and links work as they are.
(function () {
  "use strict";

  var headerForm = document.querySelector("[data-photo-form]");
  var headerInput = document.querySelector("[data-photo-input]");
  var searchbar = document.querySelector("[data-searchbar]");
  var overlay = document.querySelector("[data-drop-overlay]");
  var busy = document.querySelector("[data-photo-busy]");

  function showBusy() {
    if (busy) busy.hidden = false;
  }

  // Page shown again from the back/forward cache: never leave the spinner up.
  window.addEventListener("pageshow", function () {
    if (busy) busy.hidden = true;
  });

  function submitHeaderPhoto() {
    if (!headerForm) return;
    var words = searchbar ? searchbar.querySelector("input[name=q]").value : "";
    headerForm.querySelector("input[name=q]").value = words;
    showBusy();
    headerForm.submit();
  }

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

  // The camera button in the header opens the file picker; the choice is sent at once.
  document.querySelectorAll("[data-photo-pick]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!headerInput) return;
      event.preventDefault();
      headerInput.click();
    });
  });
  if (headerInput) {
    headerInput.addEventListener("change", function () {
      if (headerInput.files && headerInput.files.length) submitHeaderPhoto();
    });
  }

  // Drop zones (home page, error page): show the chosen file's name; the shopper may add words.
  document.querySelectorAll("[data-dropzone]").forEach(function (zone) {
    var input = zone.querySelector("[data-dropzone-input]");
    var hint = zone.querySelector(".dropzone-hint");
    function showName() {
      if (input.files && input.files.length && hint) {
        hint.textContent = "Selected: " + input.files[0].name;
        hint.classList.add("dropzone-file");
      }
    }
    input.addEventListener("change", showName);
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
      if (event.dataTransfer.files.length && setFiles(input, event.dataTransfer.files)) showName();
    });
  });
  document.querySelectorAll("[data-dropzone-form]").forEach(function (form) {
    form.addEventListener("submit", showBusy);
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
    if (headerInput && event.dataTransfer.files.length && setFiles(headerInput, event.dataTransfer.files)) {
      submitHeaderPhoto();
    }
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
