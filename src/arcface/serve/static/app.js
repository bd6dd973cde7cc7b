// Compare two photos with the arcface service: POST v1/verify, then draw boxes and landmarks.
// No external scripts: this page must work offline. Coordinates from the server are pixels of the
// upright (EXIF-oriented) image; the canvas is scaled from those.
"use strict";

(function () {
  const MAX_SIDE = 520; // canvas display size in CSS pixels (longest side)
  const KPS_COLOURS = ["#2456d6", "#2456d6", "#1a9e3a", "#d0312d", "#d0312d"]; // eyes, nose, mouth corners
  const files = { a: null, b: null };
  const bitmaps = { a: null, b: null };
  const picks = { a: null, b: null }; // index of the face chosen by a click, null: the largest
  const shown = { a: null, b: null }; // the server's last answer for each photo (for hit-testing clicks)
  let requestId = 0;

  const $ = (id) => document.getElementById(id);

  function setStatus(text, isError) {
    const el = $("status");
    el.textContent = text;
    el.classList.toggle("error", Boolean(isError));
  }

  function resetResult() {
    $("similarity").textContent = "–";
    $("similarity").removeAttribute("data-similarity");
    $("verdict").textContent = "–";
    $("verdict").className = "value";
    $("threshold").textContent = "–";
  }

  async function loadBitmap(file) {
    try {
      return await createImageBitmap(file, { imageOrientation: "from-image" });
    } catch (e) {
      return null; // not an image the browser can show; the server will say why
    }
  }

  // Draw the photo and, when given, its faces: info = {width, height, faces: [{bbox, kps, score}], used}.
  function draw(side, info) {
    const canvas = $("canvas-" + side);
    const bmp = bitmaps[side];
    const w = info ? info.width : bmp ? bmp.width : 0;
    const h = info ? info.height : bmp ? bmp.height : 0;
    if (!w || !h) {
      canvas.width = 0;
      canvas.height = 0;
      return;
    }
    const scale = Math.min(1, MAX_SIDE / Math.max(w, h));
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(w * scale * dpr);
    canvas.height = Math.round(h * scale * dpr);
    canvas.style.width = Math.round(w * scale) + "px";
    const ctx = canvas.getContext("2d");
    const k = scale * dpr; // image pixels -> canvas pixels
    if (bmp) {
      ctx.drawImage(bmp, 0, 0, canvas.width, canvas.height);
    } else {
      ctx.fillStyle = "#ccc";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
    }
    if (!info) return;
    const line = Math.max(2, Math.round(2 * dpr));
    info.faces.forEach((face, i) => {
      const used = i === info.used;
      const [x1, y1, x2, y2] = face.bbox;
      ctx.lineWidth = used ? line * 1.5 : line;
      ctx.strokeStyle = used ? "#1a9e3a" : "rgba(120,120,120,0.9)";
      ctx.strokeRect(x1 * k, y1 * k, (x2 - x1) * k, (y2 - y1) * k);
      const r = Math.max(2.5 * dpr, (x2 - x1) * k * 0.025);
      face.kps.forEach(([x, y], j) => {
        ctx.beginPath();
        ctx.arc(x * k, y * k, r, 0, 2 * Math.PI);
        ctx.fillStyle = used ? KPS_COLOURS[j] : "rgba(200,200,200,0.9)";
        ctx.fill();
      });
    });
  }

  function describeFaces(side, info) {
    const n = info ? info.faces.length : 0;
    const which = picks[side] === null ? "the largest" : "face " + (picks[side] + 1);
    $("faces-" + side).textContent = info
      ? n + (n === 1 ? " face" : " faces") + (n > 1 ? " (" + which + ", in green, was compared; click another face to choose it)" : "")
      : "";
  }

  async function compare() {
    if (!files.a || !files.b) {
      setStatus(files.a || files.b ? "Now choose the other photo." : "Waiting for two photos.");
      return;
    }
    const id = ++requestId;
    resetResult();
    setStatus("Comparing…");
    const form = new FormData();
    form.append("image_a", files.a, files.a.name || "a");
    form.append("image_b", files.b, files.b.name || "b");
    if (picks.a !== null) form.append("face_a", String(picks.a));
    if (picks.b !== null) form.append("face_b", String(picks.b));
    if (Arc.threshold() !== null) form.append("threshold", String(Arc.threshold()));
    const headers = Arc.authHeaders();
    let res, body;
    try {
      res = await fetch("v1/verify", { method: "POST", body: form, headers });
      body = await res.json();
    } catch (e) {
      if (id === requestId) setStatus("Could not reach the server: " + e, true);
      return;
    }
    if (id !== requestId) return; // a newer comparison has started
    if (!res.ok) {
      const err = (body && body.error) || {};
      const where = err.field ? " [" + err.field + "]" : "";
      setStatus("Error " + res.status + where + ": " + (err.message || res.statusText), true);
      ["a", "b"].forEach((s) => { draw(s, null); describeFaces(s, null); });
      return;
    }
    const sim = body.similarity;
    $("similarity").textContent = sim.toFixed(4);
    $("similarity").setAttribute("data-similarity", String(sim));
    $("verdict").textContent = body.same ? "Same person" : "Different people";
    $("verdict").className = "value " + (body.same ? "same" : "different");
    $("threshold").textContent = body.threshold.toFixed(4);
    shown.a = body.images.image_a;
    shown.b = body.images.image_b;
    draw("a", body.images.image_a);
    draw("b", body.images.image_b);
    describeFaces("a", body.images.image_a);
    describeFaces("b", body.images.image_b);
    const notes = (body.notes || []).join("; ");
    setStatus("Cosine similarity " + sim.toFixed(4) + " vs threshold " + body.threshold.toFixed(4) +
      (notes ? ". " + notes : "."));
  }

  async function setFile(side, file) {
    if (!file) return;
    files[side] = file;
    picks[side] = null;
    shown[side] = null;
    bitmaps[side] = await loadBitmap(file);
    $("drop-" + side).classList.add("has-image");
    draw(side, null);
    describeFaces(side, null);
    await compare();
  }

  ["a", "b"].forEach((side) => {
    const input = $("file-" + side);
    const zone = $("drop-" + side);
    input.addEventListener("change", () => setFile(side, input.files[0]));
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      const f = e.dataTransfer && e.dataTransfer.files[0];
      if (f) setFile(side, f);
    });
  });
  // a click on a face of a photo with several faces compares that face instead of the largest
  function pickAt(side, event) {
    const info = shown[side];
    if (!info || info.faces.length < 2) return;
    event.preventDefault(); // the canvas sits inside the file-picker label: do not open the picker
    const canvas = $("canvas-" + side);
    const rect = canvas.getBoundingClientRect();
    const x = (event.clientX - rect.left) * (info.width / rect.width);
    const y = (event.clientY - rect.top) * (info.height / rect.height);
    let best = null;
    info.faces.forEach((f, i) => {
      const [x1, y1, x2, y2] = f.bbox;
      const area = (x2 - x1) * (y2 - y1);
      if (x >= x1 && x <= x2 && y >= y1 && y <= y2 && (best === null || area < best.area)) best = { i, area };
    });
    if (best === null || best.i === info.used) return;
    picks[side] = best.i;
    compare();
  }
  ["a", "b"].forEach((side) => $("canvas-" + side).addEventListener("click", (e) => pickAt(side, e)));
  $("api-key").addEventListener("change", compare);
})();
