// remedy's console works without this file. With it, a page's live parts
// (the runs table and chart, marked data-live) follow new runs as they
// happen: the server says "changed" (server-sent events), and the page
// fetches itself again and swaps those parts in place.
"use strict";
(function () {
  var live = document.querySelectorAll("[data-live][id]");
  if (!live.length || !window.EventSource) { return; }
  var pending = false;
  function refresh() {
    pending = false;
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live][id]").forEach(function (part) {
          var next = fresh.getElementById(part.id);
          if (next) { part.replaceWith(document.importNode(next, true)); }
        });
      });
  }
  new EventSource("/ui/events").addEventListener("changed", function () {
    if (!pending) { pending = true; setTimeout(refresh, 250); }
  });
})();
