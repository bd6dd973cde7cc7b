// Identify: POST v1/identify, then label every face on the photo (green: known person, grey: unknown).
"use strict";

(function () {
  const { $, api, setStatus, fillGalleries } = Arc;
  const MAX_SIDE = 900;
  let file = null;
  let bitmap = null;

  function draw(info, faces) {
    const canvas = $("canvas");
    const w = info ? info.width : bitmap ? bitmap.width : 0;
    const h = info ? info.height : bitmap ? bitmap.height : 0;
    if (!w || !h) { canvas.width = 0; canvas.height = 0; return; }
    const scale = Math.min(1, MAX_SIDE / Math.max(w, h));
    canvas.width = Math.round(w * scale);
    canvas.height = Math.round(h * scale);
    const ctx = canvas.getContext("2d");
    if (bitmap) ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    (faces || []).forEach((f, i) => {
      const [x1, y1, x2, y2] = f.bbox.map((v) => v * scale);
      const known = f.identity !== "unknown";
      ctx.lineWidth = 3;
      ctx.strokeStyle = known ? "#1a9e3a" : "#8a8f98";
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      const label = (i + 1) + ". " + f.identity + (f.similarity == null ? "" : " " + f.similarity.toFixed(2));
      ctx.font = "bold 15px system-ui, sans-serif";
      const tw = ctx.measureText(label).width + 8;
      ctx.fillStyle = known ? "#1a9e3a" : "#6b7280";
      ctx.fillRect(x1, Math.max(0, y1 - 22), tw, 22);
      ctx.fillStyle = "#fff";
      ctx.fillText(label, x1 + 4, Math.max(16, y1 - 6));
    });
  }

  async function identify() {
    const gallery = $("gallery").value;
    if (!file || !gallery) {
      setStatus("status", gallery ? "Now choose a photo." : "Create a gallery first (Galleries page).");
      return;
    }
    setStatus("status", "Identifying…");
    const form = new FormData();
    form.append("image", file, file.name || "photo");
    form.append("gallery", gallery);
    if (Arc.threshold() !== null) form.append("threshold", String(Arc.threshold()));
    try {
      const body = await api("POST", "v1/identify", form);
      draw(body.image, body.faces);
      const list = $("answers");
      list.innerHTML = "";
      body.faces.forEach((f) => {
        const li = document.createElement("li");
        li.className = f.identity === "unknown" ? "unknown" : "known";
        li.dataset.identity = f.identity;
        const best = f.matches && f.matches[0];
        li.textContent = f.identity + (f.similarity == null ? "" : " (cosine " + f.similarity.toFixed(4) + ")") +
          (f.identity === "unknown" && best ? ", nearest: " + best.candidate : "");
        list.appendChild(li);
      });
      $("threshold-note").textContent = "threshold " + body.threshold.toFixed(4) + " (cosine)";
      const known = body.faces.filter((f) => f.identity !== "unknown").length;
      setStatus("status", body.faces.length + " faces, " + known + " identified.");
    } catch (e) {
      draw(null, null);
      setStatus("status", String(e.message || e), true);
    }
  }

  async function setFile(f) {
    if (!f) return;
    file = f;
    try { bitmap = await createImageBitmap(f, { imageOrientation: "from-image" }); } catch (e) { bitmap = null; }
    $("drop").classList.add("has-image");
    draw(null, null);
    await identify();
  }

  $("file").addEventListener("change", () => setFile($("file").files[0]));
  $("drop").addEventListener("dragover", (e) => { e.preventDefault(); });
  $("drop").addEventListener("drop", (e) => { e.preventDefault(); setFile(e.dataTransfer.files[0]); });
  $("gallery").addEventListener("change", identify);
  const wanted = new URLSearchParams(location.search).get("gallery");
  fillGalleries($("gallery"), wanted).catch((e) => setStatus("status", String(e.message || e), true));
})();
