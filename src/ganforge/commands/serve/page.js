// ganforge serve: the page's behaviour. Talks only to this server's /api (app.py); no library, nothing remote.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];
let current = null;
const urls = {};          // img id -> the object URL it shows (revoked when replaced)

function show(el, on) { el.hidden = !on; }

function panelError(section, text) {
  const p = section.querySelector(".panel-error");
  p.textContent = text || "";
  show(p, !!text);
}

async function errorText(response) {
  try { return (await response.json()).error || response.statusText; } catch (e) { return response.statusText; }
}

// Fetch `url` (GET, or POST of `body`) into <img id=imgId>; the img's data-state says where it is
// ("loading", "ready", "error") and data-request which request it shows.
async function load(imgId, url, body) {
  const img = $(imgId), section = img.closest("section");
  img.dataset.state = "loading";
  img.dataset.request = url;
  let response;
  try {
    response = await fetch(url, body ? {method: "POST", body: body} : {});
  } catch (e) {
    panelError(section, "the server did not answer (is `ganforge serve` still running?)");
    img.dataset.state = "error";
    return null;
  }
  if (img.dataset.request !== url) return null;     // a newer request replaced this one
  if (!response.ok) {
    panelError(section, await errorText(response));
    img.dataset.state = "error";
    show(img, false);                               // not the previous answer beside a new input
    return null;
  }
  panelError(section, "");
  const blob = await response.blob();
  if (blob.type.startsWith("text/csv")) { await showTable(img, blob); return blob; }
  if (urls[imgId]) URL.revokeObjectURL(urls[imgId]);
  urls[imgId] = URL.createObjectURL(blob);
  img.onload = () => { img.dataset.state = "ready"; };
  img.src = urls[imgId];
  show(img, true);
  return urls[imgId];
}

async function showTable(img, blob) {
  const rows = (await blob.text()).trim().split("\n").slice(0, 21).map((line) => line.split(","));
  const table = document.createElement("table");
  rows.forEach((cells, i) => {
    const tr = table.insertRow();
    cells.forEach((c) => { const td = document.createElement(i ? "td" : "th"); td.textContent = c; tr.appendChild(td); });
  });
  const box = $("sample-table");
  box.replaceChildren(table);
  show(box, true);
  show(img, false);
  const a = $("sample-download");
  if (urls.csv) URL.revokeObjectURL(urls.csv);
  urls.csv = URL.createObjectURL(blob);
  a.href = urls.csv;
  a.download = "rows.csv";
  img.dataset.state = "ready";
}

function api(panel, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  return `/api/models/${current.index}/${panel}?${q}`;
}

// -- samples --------------------------------------------------------------------------------------------------
let timer = null;
function drawSoon() { clearTimeout(timer); timer = setTimeout(drawSamples, 150); }

async function drawSamples() {
  const m = current;
  const params = {seed: $("seed").value || 0, n: $("n").value};
  if (m.classes.length && $("label").value !== "") params.label = $("label").value;
  if (m.caption !== null) params.text = $("text").value;
  if (m.truncation) params.truncation = $("truncation").value;
  const url = await load("sample-img", api("sample", params));
  if (url && m.kind !== "table") {
    const a = $("sample-download");
    a.href = url;
    a.download = `sample-seed${params.seed}${params.label !== undefined ? "-label" + params.label : ""}.png`;
  }
  show($("sample-download"), !!url);
}

// -- walk, style mixing ---------------------------------------------------------------------------------------
function walk() {
  const m = current;
  const params = {seed: $("walk-seed").value || 0, space: $("walk-space").value, frames: $("walk-frames").value,
                  walks: $("walk-walks").value};
  if (m.classes.length && $("label").value !== "") params.label = $("label").value;
  if (m.truncation) params.truncation = $("truncation").value;
  load("walk-img", api("walk", params));
}

function styleMix() {
  const bands = [...$("style-bands").querySelectorAll("input:checked")].map((b) => b.value);
  if (!bands.length) { panelError($("panel-style"), "tick at least one band of styles to copy from B"); return; }
  load("style-img", api("style", {seed: $("style-seed").value || 0, truncation: $("style-truncation").value,
                                  bands: bands.join(",")}));
}

// -- uploads: the file's bytes are the request body (no file name is sent) ------------------------------------
async function upload(panel, file) {
  if (!file) return;
  const input = $(`${panel}-in`);
  if (urls[input.id]) URL.revokeObjectURL(urls[input.id]);
  urls[input.id] = URL.createObjectURL(file);
  input.src = urls[input.id];
  show(input, true);
  const params = panel === "translate" ? {direction: $("direction").value, resize: $("resize").checked} : {};
  const url = await load(`${panel}-out`, api(panel, params), file);
  const a = $(`${panel}-download`);
  if (url) a.href = url;
  show(a, !!url);
}

// -- the model picker -----------------------------------------------------------------------------------------
function choose(index) {
  current = models[index];
  const m = current;
  $("about").textContent = `${m.recipe} on ${m.data}, ${m.kind} ${m.shape.join("x")}` +
    (m.step !== null ? `, step ${m.step}` : "");
  $("message").textContent = m.message || "";
  show($("message"), !!m.message);
  for (const p of ["sample", "walk", "style", "translate", "upscale"]) {
    const section = $(`panel-${p}`);
    show(section, m.panels.includes(p));
    section.querySelectorAll("img").forEach((img) => { show(img, false); delete img.dataset.state; });
    panelError(section, "");
  }
  show($("sample-table"), false);
  const counts = [...m.counts].sort((a, b) => a - b);
  $("n").replaceChildren(...counts.map((c) => new Option(c, c, c === m.counts[0], c === m.counts[0])));
  const label = $("label");
  label.replaceChildren(new Option("all (cycling)", ""), ...m.classes.map((c, i) => new Option(c, i)));
  show($("label-box"), m.classes.length > 0);
  $("text").value = m.caption || "";
  show($("text-box"), m.caption !== null);
  show($("truncation-box"), m.truncation);
  $("walk-space").replaceChildren(...m.spaces.map((s) => new Option(s)));
  $("style-bands").replaceChildren(...m.bands.map((b) => {
    const l = document.createElement("label");
    const c = document.createElement("input");
    c.type = "checkbox"; c.value = b; c.checked = true;
    l.append(c, " " + b);
    return l;
  }));
  $("direction").replaceChildren(...m.directions.map((d) => new Option(d)));
  show($("direction-box"), m.directions.length > 1);
  document.querySelectorAll(".limit").forEach((p) => {
    p.textContent = `PNG, JPEG, WebP, BMP, GIF or TIFF; up to ${m.max_side} px a side and ` +
      `${(m.upload_limit / 2 ** 20).toFixed(0)} MiB`;
  });
  for (const id of ["translate-file", "upscale-file"]) $(id).value = "";
  if (m.panels.includes("sample")) drawSamples();
  if (m.panels.includes("walk")) walk();
  if (m.panels.includes("style")) styleMix();
}

async function start() {
  const response = await fetch("/api/models");
  if (!response.ok) { $("error").textContent = await errorText(response); show($("error"), true); return; }
  models = (await response.json()).models;
  $("model").replaceChildren(...models.map((m) => new Option(`${m.name} (${m.recipe})`, m.index)));
  $("model").addEventListener("change", (e) => choose(Number(e.target.value)));
  for (const id of ["seed", "n", "label", "text", "truncation"]) $(id).addEventListener("input", drawSoon);
  $("truncation").addEventListener("input", () => {
    $("truncation-value").textContent = Number($("truncation").value).toFixed(2);
  });
  $("style-truncation").addEventListener("input", () => {
    $("style-truncation-value").textContent = Number($("style-truncation").value).toFixed(2);
  });
  $("reseed").addEventListener("click", () => {
    $("seed").value = Math.floor(Math.random() * 100000);
    drawSamples();
  });
  $("walk-go").addEventListener("click", walk);
  $("style-go").addEventListener("click", styleMix);
  $("translate-file").addEventListener("change", (e) => upload("translate", e.target.files[0]));
  $("upscale-file").addEventListener("change", (e) => upload("upscale", e.target.files[0]));
  for (const id of ["direction", "resize"]) {
    $(id).addEventListener("change", () => upload("translate", $("translate-file").files[0]));
  }
  document.body.dataset.ready = "1";
  choose(0);
}

start();
