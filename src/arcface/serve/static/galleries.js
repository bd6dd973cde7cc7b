// Galleries: create/delete galleries, enrol people from photos, remove people (the v1/galleries endpoints).
"use strict";

(function () {
  const { $, api, setStatus, bindKey, fillGalleries } = Arc;
  const enc = encodeURIComponent;

  async function showPeople() {
    const gallery = $("gallery").value;
    const body = $("people");
    body.innerHTML = "";
    if (!gallery) { setStatus("status", "No gallery yet: create one."); return; }
    const data = await api("GET", "v1/galleries/" + enc(gallery) + "/identities");
    data.identities.forEach((p) => {
      const tr = document.createElement("tr");
      tr.dataset.name = p.name;
      const name = document.createElement("td");
      name.textContent = p.name;
      const n = document.createElement("td");
      n.textContent = String(p.images);
      const act = document.createElement("td");
      const btn = document.createElement("button");
      btn.textContent = "Remove";
      btn.className = "danger remove";
      btn.addEventListener("click", () => run(async () => {
        await api("DELETE", "v1/galleries/" + enc(gallery) + "/identities/" + enc(p.name));
        await showPeople();
        return "Removed " + p.name + ".";
      }));
      act.appendChild(btn);
      tr.append(name, n, act);
      body.appendChild(tr);
    });
    setStatus("status", data.identities.length + " people in " + gallery + ".");
  }

  async function run(task) {
    try {
      const msg = await task();
      if (msg) setStatus("status", msg);
    } catch (e) {
      setStatus("status", String(e.message || e), true);
    }
  }

  async function reload(wanted) {
    await fillGalleries($("gallery"), wanted);
    await showPeople();
  }

  bindKey();
  $("gallery").addEventListener("change", () => run(showPeople));
  $("create").addEventListener("click", () => run(async () => {
    const name = $("new-gallery").value.trim();
    if (!name) throw new Error("Give the new gallery a name.");
    await api("POST", "v1/galleries/" + enc(name));
    $("new-gallery").value = "";
    await reload(name);
    return "Created " + name + ".";
  }));
  $("delete-gallery").addEventListener("click", () => run(async () => {
    const gallery = $("gallery").value;
    if (!gallery || !confirm("Delete gallery " + gallery + " and all its people?")) return "";
    await api("DELETE", "v1/galleries/" + enc(gallery));
    await reload();
    return "Deleted " + gallery + ".";
  }));
  $("enroll").addEventListener("click", () => run(async () => {
    const gallery = $("gallery").value;
    const name = $("person").value.trim();
    const photos = Array.from($("photos").files);
    if (!gallery || !name || !photos.length) throw new Error("Choose a gallery, a name and at least one photo.");
    setStatus("status", "Enrolling " + name + "…");
    const form = new FormData();
    form.append("name", name);
    photos.forEach((f) => form.append("images", f, f.name));
    const info = await api("POST", "v1/galleries/" + enc(gallery) + "/identities", form);
    $("person").value = "";
    $("photos").value = "";
    await showPeople();
    return "Enrolled " + info.name + " (" + info.images + " photos).";
  }));
  api("GET", "v1/config").then((c) => {
    $("config").textContent = "Threshold " + c.threshold.value.toFixed(4) + " (cosine): " + c.threshold.provenance;
  }).catch(() => {});
  run(() => reload(new URLSearchParams(location.search).get("gallery")));
})();
