// While campaigns are sending, refresh the dashboard's "Sending now" card every few seconds.
// The server renders (and escapes) the card; this only swaps the fresh copy in.
(function () {
  "use strict";
  var INTERVAL_MS = 2000;

  function card() {
    return document.getElementById("dashboard-sending");
  }

  function refresh() {
    var current = card();
    if (!current || current.dataset.active !== "1") {
      return;
    }
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("dashboard-sending");
        var live = card();
        if (fresh && live) {
          live.replaceWith(fresh);
          var kpi = document.getElementById("kpi-sending");
          if (kpi) {
            kpi.textContent = String(fresh.querySelectorAll(".crm-sending-row[data-finished=\"0\"]").length);
          }
        }
      })
      .catch(function () {})
      .finally(function () {
        window.setTimeout(refresh, INTERVAL_MS);
      });
  }

  window.setTimeout(refresh, INTERVAL_MS);
})();
