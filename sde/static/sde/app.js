/*
 * sde — progressive enhancement only. Every page works without this file.
 *  (a) Move focus to the error summary when a form has errors.
 *  (b) <button data-confirm="message"> asks for confirmation before submitting.
 *  (c) input[data-autocomplete-otp] gets one-time-code autocomplete + numeric keypad.
 */
(function () {
  "use strict";

  function focusErrorSummary() {
    var summary = document.querySelector(".error-summary");
    if (!summary) {
      return;
    }
    if (!summary.hasAttribute("tabindex")) {
      summary.setAttribute("tabindex", "-1");
    }
    summary.focus();
  }

  function wireConfirmButtons() {
    // Delegated listener on submit so Enter-key submissions are covered too.
    document.addEventListener("submit", function (event) {
      var submitter = event.submitter;
      var message = null;
      if (submitter && submitter.hasAttribute("data-confirm")) {
        message = submitter.getAttribute("data-confirm");
      } else if (!submitter) {
        // Older browsers without SubmitEvent.submitter: use the form's only confirm button.
        var buttons = event.target.querySelectorAll("button[data-confirm]");
        if (buttons.length === 1) {
          message = buttons[0].getAttribute("data-confirm");
        }
      }
      if (message && !window.confirm(message)) {
        event.preventDefault();
      }
    });
  }

  function enhanceOtpInputs() {
    var inputs = document.querySelectorAll("input[data-autocomplete-otp]");
    Array.prototype.forEach.call(inputs, function (input) {
      input.setAttribute("autocomplete", "one-time-code");
      input.setAttribute("inputmode", "numeric");
      input.setAttribute("spellcheck", "false");
    });
  }

  function init() {
    enhanceOtpInputs();
    wireConfirmButtons();
    focusErrorSummary();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();

// Ingest progress: poll the status endpoint (database state) and reload when finished.
(function () {
  var box = document.querySelector("[data-ingest-status-url]");
  if (!box) { return; }
  var bar = document.getElementById("ingest-progress");
  var stage = document.getElementById("ingest-stage");
  function poll() {
    fetch(box.getAttribute("data-ingest-status-url"), { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (state) {
        if (bar) { bar.value = state.progress; bar.textContent = state.progress + "%"; }
        if (stage && state.stage) { stage.textContent = state.stage; }
        if (state.status === "succeeded" || state.status === "failed") {
          window.location.reload();
        } else {
          window.setTimeout(poll, 1500);
        }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1000);
})();
