// Galleries: create/delete galleries, enrol people from photos or a folder of sub-folders, rename and remove
// people (the v1/galleries endpoints); each person is shown with the face thumbnail kept at enrolment.
"use strict";

(function () {
  const { $, api, imageUrl, run, setStatus, fillGalleries } = Arc;
  const enc = encodeURIComponent;
  const IMAGE = /\.(jpe?g|png|webp|bmp|pgm|ppm)$/i;
  const CHUNK_FILES = 16; // photos per request when a person has many (each request stays under the limit)
  let uploadLimit = 10 * 1024 * 1024;
  let objectUrls = [];

  function cell(tr, child) {
    const td = document.createElement("td");
    if (typeof child === "string") td.textContent = child; else if (child) td.appendChild(child);
    tr.appendChild(td);
    return td;
  }

  function button(text, cls, onClick) {
    const b = document.createElement("button");
    b.textContent = text;
    b.className = cls;
    b.addEventListener("click", onClick);
    return b;
  }

  async function showPeople() {
    const gallery = $("gallery").value;
    const body = $("people");
    body.innerHTML = "";
    objectUrls.forEach((u) => URL.revokeObjectURL(u));
    objectUrls = [];
    if (!gallery) { setStatus("status", "No gallery yet: create one."); return; }
    const data = await api("GET", "v1/galleries/" + enc(gallery) + "/identities");
    const base = "v1/galleries/" + enc(gallery);
    const thumbs = [];
    data.identities.forEach((p) => {
      const tr = document.createElement("tr");
      tr.dataset.name = p.name;
      const img = document.createElement("img");
      img.className = "thumb";
      img.alt = p.thumbnail ? "face of " + p.name : "";
      if (p.thumbnail) {
        thumbs.push(imageUrl(base + "/thumbnails/" + p.id + ".jpg").then((url) => {
          if (url) { objectUrls.push(url); img.src = url; }
        }));
      }
      cell(tr, img);
      const name = cell(tr, p.name);
      name.className = "name";
      cell(tr, String(p.images));
      const act = cell(tr, null);
      act.appendChild(button("Rename", "secondary rename", () => startRename(tr, name, p.name)));
      act.appendChild(button("Remove", "danger remove", () => run(async () => {
        await api("DELETE", base + "/identities/" + enc(p.name));
        await showPeople();
        return "Removed " + p.name + ".";
      })));
      body.appendChild(tr);
    });
    await Promise.all(thumbs).catch(() => {}); // a missing thumbnail leaves an empty cell, not an error
    body.dataset.ready = "1";
    setStatus("status", data.identities.length + " people in " + gallery + ".");
  }

  function startRename(tr, nameCell, old) {
    const input = document.createElement("input");
    input.value = old;
    input.className = "rename-input";
    input.setAttribute("aria-label", "new name of " + old);
    nameCell.innerHTML = "";
    nameCell.appendChild(input);
    const save = () => run(async () => {
      const name = input.value.trim();
      if (!name || name === old) { await showPeople(); return ""; }
      await api("PATCH", "v1/galleries/" + enc($("gallery").value) + "/identities/" + enc(old), { name });
      await showPeople();
      return "Renamed " + old + " to " + name + ".";
    });
    nameCell.appendChild(button("Save", "save", save));
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") save();
      if (e.key === "Escape") run(showPeople);
    });
    input.focus();
  }

  async function reload(wanted) {
    await fillGalleries($("gallery"), wanted);
    await showPeople();
  }

  // enrol photos of one person, in requests that stay under the service's upload limit; info.fallback: the
  // photos whose face only a last-resort stage of the detector found (worth a look)
  async function enrolPhotos(gallery, name, photos) {
    let info = null;
    let chunk = [];
    let bytes = 0;
    const fallback = [];
    const send = async () => {
      const form = new FormData();
      form.append("name", name);
      chunk.forEach((f) => form.append("images", f, f.name));
      info = await api("POST", "v1/galleries/" + enc(gallery) + "/identities", form);
      (info.found_by_fallback || []).forEach((f) => fallback.push(f.photo.replace(/^[^(]*\((.*)\)$/, "$1")));
      info.fallback = fallback;
      chunk = [];
      bytes = 0;
    };
    for (const f of photos) {
      if (chunk.length && (chunk.length >= CHUNK_FILES || bytes + f.size > uploadLimit * 0.9)) await send();
      chunk.push(f);
      bytes += f.size;
    }
    if (chunk.length) await send();
    return info;
  }

  function fallbackNote(photos) {
    return photos.length ? " Check " + photos.join(", ") + ": only a last-resort stage found the face." : "";
  }

  // group a folder pick by sub-folder: ROOT/person/photo.jpg -> person; photos directly in ROOT are skipped
  function byPerson(files) {
    const people = new Map();
    const skipped = [];
    files.forEach((f) => {
      const parts = (f.webkitRelativePath || f.name).split("/");
      if (!IMAGE.test(f.name)) return;
      if (parts.length < 3) { skipped.push(f.name); return; }
      const person = parts[1];
      if (!people.has(person)) people.set(person, []);
      people.get(person).push(f);
    });
    return { people, skipped };
  }

  // photos dropped anywhere on the enrolment panel become the photos to enrol
  const panel = $("enrol-panel");
  panel.addEventListener("dragover", (e) => { e.preventDefault(); panel.classList.add("over"); });
  panel.addEventListener("dragleave", () => panel.classList.remove("over"));
  panel.addEventListener("drop", (e) => {
    e.preventDefault();
    panel.classList.remove("over");
    if (!e.dataTransfer || !e.dataTransfer.files.length) return;
    $("photos").files = e.dataTransfer.files;
    setStatus("status", e.dataTransfer.files.length + " photo(s) ready: give the name and press Enrol.");
  });
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
    const info = await enrolPhotos(gallery, name, photos);
    $("person").value = "";
    $("photos").value = "";
    await showPeople();
    return "Enrolled " + info.name + " (" + info.images + " photos)." + fallbackNote(info.fallback);
  }));
  $("enroll-folder").addEventListener("click", () => run(async () => {
    const gallery = $("gallery").value;
    const { people, skipped } = byPerson(Array.from($("folder").files));
    if (!gallery || !people.size) throw new Error("Choose a gallery and a folder with one sub-folder per person.");
    const done = [];
    const failed = [];
    const notes = [];
    let i = 0;
    for (const [name, photos] of people) {
      setStatus("status", "Enrolling " + name + " (" + (++i) + " of " + people.size + ")…");
      try {
        const info = await enrolPhotos(gallery, name, photos);
        done.push(name);
        info.fallback.forEach((p) => notes.push(name + "/" + p));
      } catch (e) {
        failed.push(name + ": " + (e.message || e));
      }
    }
    $("folder").value = "";
    await showPeople();
    let msg = "Enrolled " + done.length + " people from the folder (" + done.join(", ") + ").";
    if (skipped.length) msg += " Skipped " + skipped.length + " photo(s) outside a person's sub-folder.";
    msg += fallbackNote(notes);
    if (failed.length) throw new Error(msg + " Not enrolled: " + failed.join("; "));
    return msg;
  }));
  api("GET", "v1/config").then((c) => {
    uploadLimit = c.limits.max_upload_bytes;
    $("config").textContent = "Threshold " + c.threshold.value.toFixed(4) + " (cosine): " + c.threshold.provenance +
      " (Settings page).";
  }).catch(() => {});
  run(() => reload(new URLSearchParams(location.search).get("gallery")));
})();
