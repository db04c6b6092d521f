// Agent console: small behaviours around the htmx partials. A file, not inline code: the
// CSP allows scripts from this site only.
(function () {
  "use strict";

  var PROGRESSIVE_KEY = "rmc-dialler.progressive";
  var alertTimer = null;

  // --- the callback picker only shows (and submits) for outcomes that need a time -----------
  function syncCallbackFields() {
    var select = document.getElementById("disposition");
    var fields = document.getElementById("callback-fields");
    if (!select || !fields) return;
    var option = select.options[select.selectedIndex];
    var needed = Boolean(option && option.getAttribute("data-needs-callback") === "true");
    fields.hidden = !needed;
    fields.disabled = !needed;
  }

  // --- progressive mode is remembered in this browser ----------------------------------------
  function restoreProgressive() {
    var box = document.getElementById("progressive-mode");
    if (!box) return;
    try {
      box.checked = window.localStorage.getItem(PROGRESSIVE_KEY) === "on";
    } catch (e) {
      /* storage unavailable: the box starts unticked */
    }
  }

  function rememberProgressive(box) {
    try {
      window.localStorage.setItem(PROGRESSIVE_KEY, box.checked ? "on" : "off");
    } catch (e) {
      /* ignore */
    }
  }

  // --- timers: the wrap-up countdown and the length of a connected call -----------------------
  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var m = Math.floor(s / 60);
    var rest = s % 60;
    return m + ":" + (rest < 10 ? "0" : "") + rest;
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      if (!el.dataset.deadline) {
        el.dataset.deadline = String(now + Number(el.dataset.countdown) * 1000);
      }
      el.textContent = clock((Number(el.dataset.deadline) - now) / 1000);
    });
    document.querySelectorAll("[data-since]").forEach(function (el) {
      var since = Date.parse(el.dataset.since);
      if (!isNaN(since)) el.textContent = clock((now - since) / 1000);
    });
  }

  // --- errors htmx does not swap (404, 409, 429, 5xx) are shown at the top ------------------------
  function showAlert(message) {
    var box = document.getElementById("console-alert");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
    window.clearTimeout(alertTimer);
    alertTimer = window.setTimeout(function () {
      box.hidden = true;
    }, 10000);
  }

  function messageFrom(xhr) {
    if (xhr && xhr.status === 429) return "Too many requests: wait a moment and try again.";
    try {
      var body = JSON.parse(xhr.responseText);
      if (body && body.error && body.error.message) return body.error.message;
    } catch (e) {
      /* not JSON */
    }
    if (xhr && xhr.status === 403) return "Your session has expired: reload the page and sign in again.";
    return "Something went wrong (" + (xhr ? xhr.status : "no answer") + "). Try again.";
  }

  // After a new work panel arrives, move keyboard and screen-reader focus to its heading.
  function focusWork(target) {
    if (!target || target.id !== "work") return;
    var heading = target.querySelector("h2");
    if (!heading) return;
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: false });
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target && target.id === "disposition") syncCallbackFields();
    if (target && target.id === "progressive-mode") rememberProgressive(target);
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    syncCallbackFields();
    tick();
    focusWork(event.detail && event.detail.target);
  });

  document.addEventListener("htmx:responseError", function (event) {
    showAlert(messageFrom(event.detail && event.detail.xhr));
  });

  document.addEventListener("htmx:sendError", function () {
    showAlert("The dialler could not be reached. Check your connection and try again.");
  });

  document.addEventListener("DOMContentLoaded", function () {
    restoreProgressive();
    syncCallbackFields();
    tick();
    window.setInterval(tick, 1000);
  });
})();
