/* The console's own script (compiled into youmi-server; no build step).
 * Small on purpose: pages work without it, and htmx does the partial updates.
 * - <time datetime> shown in the reader's time zone;
 * - the bind code's countdown ([data-remaining-ms], counted from when the page
 *   arrived, so the browser's clock does not matter);
 * - [data-close] buttons;
 * - an htmx request that failed shows the error page's message in #flash;
 * - focus moves to a panel htmx just put in place. */
(function () {
  "use strict";

  /* Each element is enhanced once, however often htmx reports it loaded. */
  function fresh(root, selector) {
    var found = Array.prototype.slice.call(root.querySelectorAll(selector));
    if (root.matches && root.matches(selector)) found.push(root);
    return found.filter(function (el) {
      if (el.hasAttribute("data-enhanced")) return false;
      el.setAttribute("data-enhanced", "");
      return true;
    });
  }

  function localTimes(root) {
    fresh(root, "time[datetime]").forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (!isNaN(date)) {
        el.textContent = date.toLocaleString(document.documentElement.lang, {
          year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"
        });
        el.title = el.getAttribute("datetime");
      }
    });
  }

  function countdowns(root) {
    fresh(root, "[data-remaining-ms]").forEach(function (el) {
      var deadline = Date.now() + Number(el.getAttribute("data-remaining-ms"));
      function tick() {
        if (!el.isConnected) return;
        var left = Math.ceil((deadline - Date.now()) / 1000);
        if (left <= 0) {
          el.textContent = el.getAttribute("data-expired");
          el.classList.add("expired");
          return;
        }
        var secs = left % 60;
        el.textContent = Math.floor(left / 60) + ":" + (secs < 10 ? "0" : "") + secs;
        setTimeout(tick, 250);
      }
      tick();
    });
  }

  function enhance(root) {
    localTimes(root);
    countdowns(root);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-close]");
    if (button) {
      var target = document.querySelector(button.getAttribute("data-close"));
      if (target) target.remove();
    }
  });

  document.addEventListener("DOMContentLoaded", function () { enhance(document); });

  /* New content from htmx (a row, a panel): enhance it, and move the focus
   * to a panel's heading so that keyboard and screen reader users land there. */
  document.addEventListener("htmx:load", function (event) {
    enhance(event.detail.elt);
    var heading = event.detail.elt.querySelector && event.detail.elt.querySelector("h2[tabindex='-1']");
    if (heading) heading.focus();
  });

  document.addEventListener("htmx:responseError", function (event) {
    var flash = document.getElementById("flash");
    if (!flash) return;
    var page = new DOMParser().parseFromString(event.detail.xhr.responseText, "text/html");
    var message = page.getElementById("error-message");
    var text = message ? message.textContent : event.detail.xhr.statusText;
    flash.innerHTML = "";
    var p = document.createElement("p");
    p.className = "alert error";
    p.setAttribute("role", "alert");
    p.textContent = text;
    flash.appendChild(p);
  });
})();
