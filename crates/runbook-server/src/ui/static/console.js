// The console's only script (served from /ui/static under a content hash; the CSP allows no
// other). The live timeline: the server sends each event as an escaped HTML fragment over
// server-sent events; at the end the page reloads to show the outcome.
(function () {
  "use strict";
  var list = document.getElementById("timeline");
  if (!list || !list.dataset.live) return;
  var badge = document.getElementById("live");
  var source = new EventSource(list.dataset.live);
  source.addEventListener("timeline", function (e) {
    var empty = document.getElementById("timeline-empty");
    if (empty) empty.remove();
    list.insertAdjacentHTML("beforeend", e.data);
  });
  source.addEventListener("end", function () {
    source.close();
    if (badge) badge.textContent = "ended";
    window.location.reload();
  });
})();
