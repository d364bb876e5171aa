/*
 * sde — autosave for the application's section pages (progressive enhancement: every
 * page works without it through its "Save and continue" button).
 *
 * A form with data-autosave-url is posted there (same origin, CSRF header) a few seconds
 * after the last change and when focus leaves a changed field. The JSON answer updates the
 * hidden revision field, so the page's own submit is not refused as stale, and the
 * aria-live status ("Saved at 14:05" or why not). After a stale answer (409: changed in
 * another tab) autosave stops, so nothing is overwritten.
 * In the data step, typing a justification ticks its field (textarea[data-pick]).
 */
(function () {
  "use strict";

  var DELAY_MS = 3000;
  var form = document.querySelector("form[data-autosave-url]");
  if (!form || !window.fetch || !window.FormData) {
    return;
  }
  var url = form.getAttribute("data-autosave-url");
  var status = document.getElementById("autosave-status");
  var revision = form.querySelector("input[name='revision']");
  var timer = null;
  var dirty = false;
  var saving = false;
  var stopped = false;
  var submitting = false;
  var waitingSubmitter;  // undefined: no submit waits; null: a submit without a button

  function say(text, isError) {
    if (!status) {
      return;
    }
    status.textContent = text;
    status.classList.toggle("autosave-status--error", Boolean(isError));
  }

  function csrfToken() {
    var input = form.querySelector("input[name='csrfmiddlewaretoken']");
    return input ? input.value : "";
  }

  function schedule() {
    if (stopped || submitting) {
      return;
    }
    dirty = true;
    window.clearTimeout(timer);
    timer = window.setTimeout(save, DELAY_MS);
  }

  function finishWaitingSubmit() {
    if (waitingSubmitter === undefined) {
      return;
    }
    var submitter = waitingSubmitter;
    waitingSubmitter = undefined;
    if (form.requestSubmit) {
      form.requestSubmit(submitter || undefined);
    } else {
      form.submit();
    }
  }

  // After a save: the refused-save summary no longer applies; the "still needed" box
  // lists what the service now says; field messages that are no longer true go.
  function refreshTodo(todo) {
    var refused = document.querySelector(".error-summary");
    if (refused) {
      refused.parentNode.removeChild(refused);
    }
    var box = document.getElementById("todo-summary");
    var list = document.getElementById("todo-list");
    if (!box || !list) {
      return;
    }
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    var targets = [];
    todo.forEach(function (item) {
      var li = document.createElement("li");
      if (item[0]) {
        var link = document.createElement("a");
        link.href = item[0];
        link.textContent = item[1];
        li.appendChild(link);
        targets.push(item[0]);
      } else {
        li.textContent = item[1];
      }
      list.appendChild(li);
    });
    box.hidden = todo.length === 0;
    Array.prototype.forEach.call(form.querySelectorAll(".form-group--error"), function (group) {
      var first = group.querySelector("textarea, select, input:not([type='hidden'])");
      var id = group.getAttribute("data-target") || group.id || (first && first.id);
      if (!id || targets.indexOf("#" + id) !== -1) {
        return;
      }
      group.classList.remove("form-group--error");
      Array.prototype.forEach.call(group.querySelectorAll("[aria-invalid]"), function (input) {
        input.removeAttribute("aria-invalid");
      });
      var stale = group.querySelectorAll(
        ":scope > .error-message-list, :scope > .error-message, :scope > fieldset > .error-message-list, " +
        ":scope > fieldset > .error-message, :scope > td > .error-message"
      );
      Array.prototype.forEach.call(stale, function (message) {
        message.parentNode.removeChild(message);
      });
    });
  }

  function answered(response) {
    return response.json().then(
      function (body) { return { code: response.status, body: body }; },
      function () {
        return { code: response.status, body: { saved: false, message: "Not saved (error " + response.status + "). Use Save and continue." } };
      }
    );
  }

  function save() {
    window.clearTimeout(timer);
    timer = null;
    if (stopped || !dirty) {
      return;
    }
    if (saving) {
      timer = window.setTimeout(save, DELAY_MS);
      return;
    }
    dirty = false;
    saving = true;
    say("Saving…", false);
    fetch(url, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "Accept": "application/json" }
    })
      .then(answered)
      .then(function (result) {
        var body = result.body;
        if (body.saved) {
          if (revision) {
            revision.value = body.revision;
          }
          say("Saved at " + body.saved_at + (body.problems ? ". Not complete yet." : ". This section is complete."), false);
          refreshTodo(body.todo || []);
        } else {
          say(body.message || "Not saved.", true);
          if (result.code === 409) {
            stopped = true;
          }
        }
      })
      .catch(function () {
        dirty = true;
        say("Not saved: the connection failed. Your answers are still on this page; use Save and continue.", true);
      })
      .then(function () {
        saving = false;
        finishWaitingSubmit();
      });
  }

  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  form.addEventListener("focusout", function () {
    if (dirty && !submitting) {
      save();
    }
  });
  form.addEventListener("submit", function (event) {
    window.clearTimeout(timer);
    if (saving) {
      // Let the save in flight finish (it raises the revision), then submit.
      event.preventDefault();
      waitingSubmitter = event.submitter || null;
      return;
    }
    submitting = true;
  });

  Array.prototype.forEach.call(form.querySelectorAll("textarea[data-pick]"), function (box) {
    box.addEventListener("input", function () {
      var tick = document.getElementById(box.getAttribute("data-pick"));
      if (tick && box.value.trim() && !tick.checked) {
        tick.checked = true;
      }
    });
  });
})();
