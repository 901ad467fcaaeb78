// gpuspot explorer: optional enhancements. Every page is complete without this script.
// - relative times ("3 min ago") kept current from each <time datetime>;
// - "live" pages (body[data-live=N]) re-fetch themselves every N seconds and swap in the new <main>.
(function () {
  "use strict";
  var units = [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];

  function relative(at, now) {
    var delta = Math.round((now - at) / 1000);
    var future = delta < 0;
    delta = Math.abs(delta);
    if (delta < 5) return "just now";
    for (var i = 0; i < units.length; i++) {
      if (delta >= units[i][0]) {
        var text = Math.floor(delta / units[i][0]) + " " + units[i][1];
        return future ? "in " + text : text + " ago";
      }
    }
    return "just now";
  }

  function refreshTimes(root) {
    var now = Date.now();
    var times = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var at = Date.parse(times[i].getAttribute("datetime"));
      if (!isNaN(at)) times[i].textContent = relative(at, now);
    }
  }

  function goLive(seconds) {
    var busy = false;
    setInterval(function () {
      if (busy || document.hidden) return;
      var active = document.activeElement;
      if (active && (active.tagName === "INPUT" || active.tagName === "TEXTAREA")) return;
      busy = true;
      fetch(window.location.href, { headers: { "Accept": "text/html" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (!html) return;
          var next = new DOMParser().parseFromString(html, "text/html");
          var fresh = next.getElementById("main");
          var main = document.getElementById("main");
          if (fresh && main) {
            main.innerHTML = fresh.innerHTML;
            var footer = next.querySelector("footer");
            if (footer) document.querySelector("footer").innerHTML = footer.innerHTML;
            refreshTimes(document);
            document.body.setAttribute("data-refreshed", String(Date.now()));
          }
        })
        .catch(function () { /* offline for a moment: try again next tick */ })
        .then(function () { busy = false; });
    }, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    refreshTimes(document);
    setInterval(function () { refreshTimes(document); }, 15000);
    var live = parseInt(document.body.getAttribute("data-live") || "0", 10);
    if (live > 0) goLive(live);
  });
})();
