// Live progress of queued and running jobs: every element with data-job-status polls
// that URL (JSON, never a log or an output) and updates its status, progress bar and
// message; the job page reloads itself when the job has finished.
(function () {
  "use strict";
  var LABELS = { queued: ["Queued", "tag--yellow"], running: ["Running", "tag--blue"],
    succeeded: ["Succeeded", "tag--green"], failed: ["Failed", "tag--red"],
    cancelled: ["Cancelled", "tag--grey"] };

  function update(element, data) {
    var status = element.querySelector("[data-job-field=status] strong");
    if (status && LABELS[data.status]) {
      status.textContent = LABELS[data.status][0];
      status.className = "tag " + LABELS[data.status][1];
    }
    var bar = element.querySelector("[data-job-field=progress]");
    if (bar) { bar.value = data.progress; bar.textContent = data.progress + "%"; }
    var message = element.querySelector("[data-job-field=message]");
    if (message) { message.textContent = data.message || ""; }
    if (data.finished) {
      if (bar) { bar.remove(); }
      if (element.hasAttribute("data-reload-when-done")) { window.location.reload(); }
    }
  }

  function poll(element) {
    var url = element.getAttribute("data-job-status");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        update(element, data);
        if (!data.finished) { window.setTimeout(function () { poll(element); }, 1500); }
      })
      .catch(function () { window.setTimeout(function () { poll(element); }, 5000); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-job-status]").forEach(poll);
  });
})();
