/* The console's own script (compiled into youmi-server; no build step).
 * Small on purpose: pages work without it, and htmx does the partial updates.
 * - <time datetime> shown in the reader's time zone;
 * - the bind code's countdown ([data-remaining-ms], counted from when the page
 *   arrived, so the browser's clock does not matter);
 * - [data-close] buttons;
 * - an htmx request that failed shows the error page's message in #flash;
 * - focus moves to a panel htmx just put in place;
 * - the devices page: ticking rows, "how long ago" times kept current, and
 *   its live feed (one EventSource per open page; the rows it names get
 *   their live cells replaced, a device it names without a row brings the
 *   rows again). */
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
    fresh(root, "time[datetime]:not([data-relative])").forEach(function (el) {
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

  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    devicesPage();
  });

  /* "12 s ago", in the page's language, counted on from the server's text. */
  function relativeTimes() {
    if (!window.Intl || !Intl.RelativeTimeFormat) return;
    var format = new Intl.RelativeTimeFormat(document.documentElement.lang, { numeric: "auto" });
    document.querySelectorAll("time[data-relative]").forEach(function (el) {
      var secs = Math.round((new Date(el.getAttribute("datetime")) - Date.now()) / 1000);
      if (isNaN(secs)) return;
      var abs = Math.abs(secs);
      el.textContent = abs < 60 ? format.format(secs, "second")
        : abs < 3600 ? format.format(Math.round(secs / 60), "minute")
        : abs < 86400 ? format.format(Math.round(secs / 3600), "hour")
        : format.format(Math.round(secs / 86400), "day");
      el.title = el.getAttribute("datetime");
    });
  }

  function devicesPage() {
    var page = document.getElementById("devices-page");
    if (!page) return;
    function boxes() {
      return Array.prototype.slice.call(document.querySelectorAll("input[name=device_ids][form=batch-form]"));
    }
    function countTicked() {
      var count = document.getElementById("selected-count");
      if (count) count.textContent = boxes().filter(function (box) { return box.checked; }).length;
    }
    document.addEventListener("change", function (event) {
      if (event.target.id === "select-all") {
        boxes().forEach(function (box) { box.checked = event.target.checked; });
      }
      if (event.target.name === "device_ids" || event.target.id === "select-all") {
        var selected = document.getElementById("scope-selected");
        if (selected) selected.checked = true;
        countTicked();
      }
    });
    setInterval(relativeTimes, 5000);
    var refreshing = false;
    function refreshRows() {
      if (refreshing || !window.htmx) return;
      refreshing = true;
      htmx.ajax("GET", location.pathname + location.search, {
        target: "#devices-content", select: "#devices-content", swap: "outerHTML"
      }).then(function () { refreshing = false; countTicked(); }, function () { refreshing = false; });
    }
    var source = new EventSource(page.getAttribute("data-feed"));
    source.addEventListener("open", function () { page.setAttribute("data-live", "on"); });
    source.addEventListener("error", function () { page.setAttribute("data-live", "off"); });
    source.addEventListener("devices", function (event) {
      var rows = new DOMParser().parseFromString(event.data, "text/html").querySelectorAll("tr[data-device]");
      var unknown = false;
      Array.prototype.forEach.call(rows, function (update) {
        var row = document.getElementById("device-" + update.getAttribute("data-device"));
        if (!row) { unknown = true; return; }
        Array.prototype.forEach.call(update.querySelectorAll("td[data-cell]"), function (cell) {
          var old = row.querySelector("td[data-cell='" + cell.getAttribute("data-cell") + "']");
          if (old) { old.replaceWith(cell); enhance(cell); }
        });
        row.classList.remove("updated");
        void row.offsetWidth;
        row.classList.add("updated");
      });
      if (unknown) refreshRows();
    });
  }

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
