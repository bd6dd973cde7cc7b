// Video: POST v1/video (one event per face track), and stream monitors (v1/monitors) with a live preview read
// from the MJPEG endpoint through fetch, so the API key header goes with it.
"use strict";

(function () {
  const { $, api, authHeaders, run, setStatus, fillGalleries } = Arc;
  const enc = encodeURIComponent;
  let watching = null; // { id, abort, since }

  function row(body, cells) {
    const tr = document.createElement("tr");
    cells.forEach((c) => {
      const td = document.createElement("td");
      if (typeof c === "string") td.textContent = c; else td.appendChild(c);
      tr.appendChild(td);
    });
    body.appendChild(tr);
    return tr;
  }

  function fmt(v, digits) { return v == null ? "–" : Number(v).toFixed(digits); }

  function showEvents(events) {
    const body = $("events");
    body.innerHTML = "";
    events.forEach((e) => {
      const tr = row(body, [String(e.track), e.identity || "–", fmt(e.similarity, 4), fmt(e.start_time, 2),
        fmt(e.end_time, 2), String(e.detections)]);
      tr.dataset.identity = e.identity || "";
      tr.className = e.identity && e.identity !== "unknown" ? "known" : "unknown";
    });
  }

  async function upload() {
    const clip = $("clip").files[0];
    if (!clip) throw new Error("Choose a clip first.");
    const form = new FormData();
    form.append("video", clip, clip.name || "clip.mp4");
    form.append("detect_every", $("detect-every").value || "5");
    if ($("gallery").value) form.append("gallery", $("gallery").value);
    if (Arc.threshold() !== null) form.append("threshold", String(Arc.threshold()));
    setStatus("status", "Tracking " + clip.name + "…");
    const body = await api("POST", "v1/video", form);
    showEvents(body.events);
    const known = body.events.filter((e) => e.identity && e.identity !== "unknown").length;
    return body.frames + " frames, " + body.events.length + " tracks, " + known + " identified" +
      (body.corrupt_frames ? ", " + body.corrupt_frames + " corrupt frames skipped" : "") + ".";
  }

  // read multipart/x-mixed-replace JPEG parts (each with a Content-Length header) into the <img>
  async function preview(id, signal) {
    const res = await fetch("v1/monitors/" + enc(id) + "/preview.mjpeg?seconds=600",
      { headers: authHeaders(), signal });
    if (!res.ok || !res.body) return;
    const reader = res.body.getReader();
    let buf = new Uint8Array(0);
    const text = new TextDecoder("latin1");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const joined = new Uint8Array(buf.length + value.length);
      joined.set(buf);
      joined.set(value, buf.length);
      buf = joined;
      for (;;) {
        const head = text.decode(buf.subarray(0, Math.min(buf.length, 300)));
        const end = head.indexOf("\r\n\r\n");
        const m = /Content-Length: *(\d+)/i.exec(head);
        if (end < 0 || !m) break;
        const start = end + 4;
        const n = Number(m[1]);
        if (buf.length < start + n) break;
        const jpg = new Blob([buf.slice(start, start + n)], { type: "image/jpeg" });
        const old = $("preview").src;
        $("preview").src = URL.createObjectURL(jpg);
        if (old.startsWith("blob:")) URL.revokeObjectURL(old);
        buf = buf.slice(start + n);
      }
    }
  }

  function watch(id) {
    if (watching) watching.abort.abort();
    watching = { id, abort: new AbortController(), since: 0 };
    $("monitor-events").innerHTML = "";
    preview(id, watching.abort.signal).catch(() => {});
  }

  async function refreshMonitors() {
    const data = await api("GET", "v1/monitors");
    const body = $("monitors");
    body.innerHTML = "";
    data.monitors.forEach((m) => {
      const act = document.createElement("span");
      const view = document.createElement("button");
      view.textContent = "Watch";
      view.className = "secondary";
      view.addEventListener("click", () => watch(m.id));
      const stop = document.createElement("button");
      stop.textContent = "Stop";
      stop.className = "danger";
      stop.addEventListener("click", () => run(async () => {
        await api("DELETE", "v1/monitors/" + enc(m.id));
        if (watching && watching.id === m.id) { watching.abort.abort(); watching = null; }
        await refreshMonitors();
        return "Stopped monitor " + m.id + ".";
      }));
      act.append(view, stop);
      row(body, [m.id, m.source, m.state + (m.error ? " (" + m.error + ")" : ""), String(m.frames),
        String(m.events), act]).dataset.monitor = m.id;
    });
    if (watching) {
      const ev = await api("GET", "v1/monitors/" + enc(watching.id) + "/events?since=" + watching.since);
      watching.since = ev.next;
      ev.events.forEach((e) => {
        const li = document.createElement("li");
        li.className = e.identity && e.identity !== "unknown" ? "known" : "unknown";
        li.textContent = "track " + e.track + ": " + (e.identity || "–") + " (" + fmt(e.start_time, 1) + "–" +
          fmt(e.end_time, 1) + " s)";
        $("monitor-events").appendChild(li);
      });
    }
  }

  $("upload").addEventListener("click", () => run(upload));
  $("clip").addEventListener("change", () => run(upload));
  $("start").addEventListener("click", () => run(async () => {
    const source = $("source").value.trim();
    if (!source) throw new Error("Give the stream's URL.");
    const m = await api("POST", "v1/monitors", {
      source, gallery: $("gallery").value || null, detect_every: Number($("detect-every").value || 5),
    });
    watch(m.id);
    await refreshMonitors();
    return "Monitoring " + source + " (" + m.id + ").";
  }));
  const wanted = new URLSearchParams(location.search).get("gallery");
  fillGalleries($("gallery"), wanted, "(none: track only)").catch((e) => setStatus("status", String(e.message || e), true));
  run(refreshMonitors);
  setInterval(() => refreshMonitors().catch(() => {}), 2000);
})();
