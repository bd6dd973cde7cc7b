// Shared by the pages: API calls with the optional key (kept in this browser's localStorage), status lines.
"use strict";

const Arc = (function () {
  const $ = (id) => document.getElementById(id);
  const keyInput = () => $("api-key");

  function apiKey() {
    const el = keyInput();
    return (el && el.value.trim()) || localStorage.getItem("arcface-api-key") || "";
  }

  // fetch JSON from the service; throws Error("Error STATUS [field]: message") on failure
  async function api(method, path, body) {
    const headers = {};
    const key = apiKey();
    if (key) headers["X-API-Key"] = key;
    const res = await fetch(path, { method, body, headers });
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const err = (data && data.error) || {};
      const where = err.field ? " [" + err.field + "]" : "";
      throw new Error("Error " + res.status + where + ": " + (err.message || res.statusText));
    }
    return data;
  }

  function setStatus(id, text, isError) {
    const el = $(id);
    el.textContent = text;
    el.classList.toggle("error", Boolean(isError));
  }

  function bindKey() {
    const el = keyInput();
    if (!el) return;
    el.value = localStorage.getItem("arcface-api-key") || "";
    el.addEventListener("change", () => localStorage.setItem("arcface-api-key", el.value.trim()));
  }

  async function fillGalleries(select, wanted) {
    const data = await api("GET", "v1/galleries");
    select.innerHTML = "";
    data.galleries.forEach((g) => {
      const opt = document.createElement("option");
      opt.value = g;
      opt.textContent = g;
      select.appendChild(opt);
    });
    if (wanted && data.galleries.includes(wanted)) select.value = wanted;
    return data.galleries;
  }

  return { $, api, setStatus, bindKey, fillGalleries };
})();
