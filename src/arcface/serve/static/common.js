// Shared by the pages: API calls with the optional key (kept in this browser's localStorage), status lines,
// the browser's threshold override (Settings page) and the navigation bar.
"use strict";

const Arc = (function () {
  const $ = (id) => document.getElementById(id);
  const keyInput = () => $("api-key");

  function apiKey() {
    const el = keyInput();
    return (el && el.value.trim()) || localStorage.getItem("arcface-api-key") || "";
  }

  const THRESHOLD_KEY = "arcface-threshold";

  // the cosine threshold this browser sends with compare/identify (Settings page), or null: the server's
  function threshold() {
    const v = localStorage.getItem(THRESHOLD_KEY);
    return v === null || v === "" || isNaN(Number(v)) ? null : Number(v);
  }

  function setThreshold(value) {
    if (value === null || value === "") localStorage.removeItem(THRESHOLD_KEY);
    else localStorage.setItem(THRESHOLD_KEY, String(value));
  }

  function authHeaders(extra) {
    const headers = Object.assign({}, extra || {});
    const key = apiKey();
    if (key) headers["X-API-Key"] = key;
    return headers;
  }

  async function failure(res) {
    if (res.status === 401) {  // show where the key goes
      const box = keyInput() && keyInput().closest("details");
      if (box) box.open = true;
    }
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    const err = (data && data.error) || {};
    const where = err.field ? " [" + err.field + "]" : "";
    return new Error("Error " + res.status + where + ": " + (err.message || res.statusText));
  }

  // an image (thumbnail) fetched with the key, as an object URL for <img src>; null when there is none
  async function imageUrl(path) {
    const res = await fetch(path, { headers: authHeaders() });
    if (res.status === 404) return null;
    if (!res.ok) throw await failure(res);
    return URL.createObjectURL(await res.blob());
  }

  // fetch JSON from the service; throws Error("Error STATUS [field]: message") on failure
  async function api(method, path, body) {
    let headers = authHeaders();
    if (body && !(body instanceof FormData)) {
      headers = authHeaders({ "Content-Type": "application/json" });
      body = JSON.stringify(body);
    }
    const res = await fetch(path, { method, body, headers });
    if (!res.ok) throw await failure(res);
    return res.json();
  }

  // run an async task; its returned message (if any) goes to the status line, an error in red
  async function run(task, statusId) {
    const id = statusId || "status";
    try {
      const msg = await task();
      if (msg) setStatus(id, msg);
    } catch (e) {
      setStatus(id, String(e.message || e), true);
    }
  }

  function setStatus(id, text, isError) {
    const el = $(id);
    el.textContent = text;
    el.classList.toggle("error", Boolean(isError));
  }

  // the API key field: a page without one (Identify, Galleries, Video) gets the same collapsed box at the end of
  // its <main>; the value is kept in this browser and sent by every page
  function bindKey() {
    let el = keyInput();
    const main = document.querySelector("main");
    if (!el && main) {
      const box = document.createElement("details");
      box.className = "settings";
      box.innerHTML = '<summary>API key</summary><label>API key (if the server needs one) ' +
        '<input type="password" id="api-key" autocomplete="off" placeholder="X-API-Key"></label>';
      main.appendChild(box);
      el = keyInput();
    }
    if (!el || el.dataset.bound) return;
    el.dataset.bound = "1";
    el.value = localStorage.getItem("arcface-api-key") || "";
    el.addEventListener("change", () => localStorage.setItem("arcface-api-key", el.value.trim()));
  }

  // fill a <select> with the gallery names (first an empty choice labelled `none`, when given); marks it ready
  async function fillGalleries(select, wanted, none) {
    const data = await api("GET", "v1/galleries");
    select.innerHTML = "";
    const names = none ? [["", none]] : [];
    data.galleries.forEach((g) => names.push([g, g]));
    names.forEach(([value, label]) => {
      const opt = document.createElement("option");
      opt.value = value;
      opt.textContent = label;
      select.appendChild(opt);
    });
    if (wanted && data.galleries.includes(wanted)) select.value = wanted;
    select.dataset.ready = "1";
    return data.galleries;
  }

  const PAGES = [["./", "Compare"], ["identify", "Identify"], ["galleries", "Galleries"], ["video", "Video"],
    ["settings", "Settings"], ["docs", "API"]];

  // fill <nav id="nav" data-page="..."> with the pages, the current one marked
  function nav() {
    const el = $("nav");
    if (!el) return;
    PAGES.forEach(([href, label]) => {
      const a = document.createElement("a");
      a.href = href;
      a.textContent = label;
      if (el.dataset.page === label) a.setAttribute("aria-current", "page");
      el.appendChild(a);
    });
  }
  nav();
  bindKey();

  return { $, api, authHeaders, imageUrl, run, setStatus, fillGalleries, threshold, setThreshold };
})();
