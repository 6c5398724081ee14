// remedy's console works without this file. With it, the runs table follows
// new runs as they happen: the server says "changed" (server-sent events)
// and the page fetches itself again and swaps the table's rows in place.
"use strict";
(function () {
  var table = document.getElementById("runs");
  if (!table || !window.EventSource) { return; }
  var pending = false;
  function refresh() {
    pending = false;
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("runs");
        if (fresh) { table.tBodies[0].replaceWith(fresh.tBodies[0]); }
      });
  }
  new EventSource("/ui/events").addEventListener("changed", function () {
    if (!pending) { pending = true; setTimeout(refresh, 250); }
  });
})();
