// Settings: the server's configuration (GET v1/config: threshold with its provenance, models, engine, limits)
// and this browser's choices (API key, threshold override), kept in localStorage.
"use strict";

(function () {
  const { $, api, run, threshold, setThreshold } = Arc;

  function fill(list, rows) {
    const dl = $(list);
    dl.innerHTML = "";
    rows.forEach(([label, value, key]) => {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = value;
      if (key) dd.dataset.key = key;
      dl.append(dt, dd);
    });
  }

  function mib(bytes) { return (bytes / 1024 / 1024).toFixed(1) + " MiB"; }

  function agreement(a) {
    if (!a) return "reference engine (no agreement needed)";
    const parts = [];
    if (a.cosine_min != null) parts.push("embedding cosine min " + Number(a.cosine_min).toFixed(6));
    if (a.decisions_changed != null && a.pairs != null) parts.push(a.decisions_changed + " of " + a.pairs + " decisions changed");
    return parts.join(", ") || JSON.stringify(a);
  }

  async function load() {
    const c = await api("GET", "v1/config");
    const t = c.threshold;
    fill("threshold-info", [
      ["Server threshold", t.value.toFixed(4) + " (cosine)", "value"],
      ["Calibrated", t.calibrated ? "yes" + (t.far != null ? ", for a false accept rate of " + t.far : "") :
        "no: fallback value", "calibrated"],
      ["Provenance", t.provenance, "provenance"],
      ["Read from", t.source === "package" ? "the package's thresholds file" : (t.source || "built in"), "source"],
      ["Engine", (t.engine || "") + ": " + agreement(t.agreement), "engine"],
      ["This browser", threshold() === null ? "uses the server's" : threshold().toFixed(4) + " (override)", "override"],
    ]);
    const e = c.engine || {};
    fill("server-info", [
      ["Version", c.version],
      ["Model pack", c.pack.name + (c.pack.licence ? " (" + c.pack.licence + ")" : "")],
      ["Detector", c.pack.detector + (e.roles ? " on " + e.roles.detector : ""), "detector"],
      ["Recognizer", c.pack.recognizer + ", " + c.embedding_dim + "-d" + (e.roles ? " on " + e.roles.recognizer : ""),
        "recognizer"],
      ["Engine", [e.runtime, e.precision].filter(Boolean).join(" / ") + (e.reason ? ": " + e.reason : "")],
      ["Similarity", c.similarity],
      ["Galleries", (c.galleries.persistent ? "on disk" : "in memory") + ", " + c.galleries.backend +
        (c.galleries.thumbnails ? ", with face thumbnails" : ", no thumbnails")],
      ["Upload limit", mib(c.limits.max_upload_bytes) + ", " + (c.limits.max_pixels / 1e6).toFixed(0) + " Mpx per image"],
      ["Inferences at once", String(c.limits.max_concurrent_inferences)],
    ]);
    $("threshold").value = threshold() === null ? "" : String(threshold());
    return "Ready.";
  }

  $("api-key").addEventListener("change", () => run(load));
  $("save-threshold").addEventListener("click", () => run(async () => {
    const raw = $("threshold").value.trim();
    const v = Number(raw);
    if (raw === "") { setThreshold(null); await load(); return "This browser uses the server's threshold."; }
    if (!Number.isFinite(v) || v < -1 || v > 1) throw new Error("A cosine threshold is between -1 and 1.");
    setThreshold(v);
    await load();
    return "This browser now decides at " + v.toFixed(4) + ".";
  }));
  $("reset-threshold").addEventListener("click", () => run(async () => {
    setThreshold(null);
    await load();
    return "This browser uses the server's threshold.";
  }));
  run(load);
})();
