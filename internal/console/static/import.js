// Refreshes an import's progress bar from its progress endpoint. The page
// works without it (reload shows the stored progress); the import itself
// runs on the server and survives a reload or a restart.
(function () {
  var el = document.getElementById("import-progress");
  if (!el) return;
  var bar = el.querySelector(".progress span");
  var text = document.getElementById("import-text");
  function tick() {
    fetch(el.dataset.url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (p) {
        var pct = p.total ? Math.floor((100 * p.done) / p.total) : 100;
        bar.style.width = pct + "%";
        el.setAttribute("aria-valuenow", String(pct));
        text.textContent = pct + "% (" + p.done + " of " + p.total + " rows: " + p.created + " created, " +
          p.duplicates + " already open, " + p.failed + " refused)" + (p.state === "done" ? " — done" : "");
        el.dataset.state = p.state;
        if (p.state !== "done") setTimeout(tick, 500);
      })
      .catch(function () { setTimeout(tick, 2000); });
  }
  tick();
})();
