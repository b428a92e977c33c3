// The studio's page: plain JavaScript, no build step, nothing fetched from elsewhere.
// It reads /api/state once, then follows /api/events (server-sent events).
"use strict";

const $ = (id) => document.getElementById(id);
const KNOBS = ["style_weight", "content_weight", "tv_weight"];
const jobs = {};          // id → {summary, stages: [], losses: {stage: [[x, loss]]}, caps: {}}
const masks = {};         // painting name → mask name
let live = null;          // the try shown in the live panel
let pick = { a: null, b: null };
let presetValues = {};

function showError(message) {
  const box = $("error");
  box.textContent = message ? "error: " + message : "";
  box.hidden = !message;
  if (message) box.scrollIntoView({ block: "nearest" });  // the button may be below the fold
}

async function api(method, path, body, raw) {
  const options = { method, headers: {} };
  if (raw !== undefined) {
    options.body = raw;
    options.headers["Content-Type"] = "application/octet-stream";
  } else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) {
    const error = new Error(data.error);
    error.confirm = response.status === 409 ? data.confirm : undefined;  // the time gate's
    if (!error.confirm) showError(data.error || response.statusText);
    throw error;
  }
  showError("");
  return data;
}

// A try or print estimated over the studio's limit on this CPU comes back 409 with its
// estimate: the page says it and asks; "Start it" sends the same request with yes.
function askToStart(confirm) {
  const s = confirm.suggestion;
  const smaller = s ? ` At ${s.value} ${s.field === "dpi" ? "DPI" : "px"} it would take at most ${confirm.limit}.` : "";
  $("confirm-text").textContent = `This render would take up to ${confirm.estimate} on this CPU ` +
    `(on an H100: about ${confirm.h100}).${smaller} Start it anyway?`;
  const dialog = $("confirm-dialog");
  return new Promise((resolve) => {
    $("confirm-start").onclick = () => { dialog.close(); resolve(true); };
    $("confirm-cancel").onclick = () => { dialog.close(); resolve(false); };
    dialog.oncancel = () => resolve(false);  // Escape
    dialog.showModal();
  });
}

async function startJob(path, body) {
  try {
    return await api("POST", path, body);
  } catch (error) {
    if (!error.confirm || !(await askToStart(error.confirm))) throw error;
    return api("POST", path, { ...body, yes: true });
  }
}

function option(select, value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text === undefined ? value : text;
  select.appendChild(o);
}

// ---- inputs ----------------------------------------------------------------------------------

function fillInputs(names) {
  const photo = $("photo");
  const chosen = photo.value;
  photo.innerHTML = "";
  names.forEach((n) => option(photo, n));
  if (names.includes(chosen)) photo.value = chosen;
  const body = $("paintings").tBodies[0];
  const ticked = new Set([...body.querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value));
  body.innerHTML = "";
  for (const name of names) {
    const row = body.insertRow();
    row.dataset.name = name;
    row.innerHTML =
      `<td><input type="checkbox" value=""></td><td><img alt=""></td><td class="small name"></td>` +
      `<td><input type="number" class="weight" min="0" step="any" value="1" title="blend weight"></td>` +
      `<td><button class="mask-button small" title="draw or upload a mask">mask</button></td>`;
    row.querySelector("input[type=checkbox]").value = name;
    row.querySelector("input[type=checkbox]").checked = ticked.has(name);
    row.querySelector("img").src = "/api/images/" + encodeURIComponent(name);
    row.querySelector(".name").textContent = name;
    row.querySelector(".mask-button").onclick = () => openMask(name);
    showMask(name);
  }
}

function showMask(name) {
  const row = [...$("paintings").tBodies[0].rows].find((r) => r.dataset.name === name);
  if (row) row.querySelector(".mask-button").textContent = masks[name] ? "mask ✓" : "mask";
}

// Every file is tried (one refused does not drop the others); the refusals are said together.
async function upload(files) {
  const refused = [];
  for (const file of files) {
    await api("PUT", "/api/uploads/" + encodeURIComponent(file.name), undefined, file)
      .catch((error) => refused.push(error.message));
  }
  const state = await api("GET", "/api/state");
  fillInputs(state.inputs);
  if (refused.length) showError(refused.join("; "));
}

// ---- look ------------------------------------------------------------------------------------

function fillPresets(presets) {
  const select = $("preset");
  const chosen = select.value;
  select.innerHTML = "";
  for (const p of presets) option(select, p.name, `${p.name} (${p.from})`);
  if (presets.some((p) => p.name === chosen)) select.value = chosen;
}

async function loadPreset() {
  const knobs = await api("GET", "/api/presets/" + encodeURIComponent($("preset").value));
  presetValues = knobs;
  $("preset-about").textContent =
    `${knobs.description} Stages: ${knobs.stages.map((s) => s[0] + " px × " + s[1]).join(" → ")}.`;
  $("pv-style_weight").textContent = `preset β ${knobs.style_weight}`;
  $("pv-content_weight").textContent = `preset α ${knobs.content_weight}`;
  $("pv-tv_weight").textContent = `preset γ ${knobs.tv_weight}`;
  $("pv-color").textContent = `preset: ${knobs.color}`;
  $("pv-style_loss").textContent = `preset: ${knobs.style_loss}`;
  $("pv-size").textContent = `preset: ${knobs.size} px`;
  for (const id of ["color", "style_loss"]) {
    $(id).options[0].textContent = `preset's (${knobs[id]})`;
  }
}

function number(id) {
  const value = $(id).value.trim();
  return value === "" ? null : Number(value);
}

function trySettings() {
  const rows = [...$("paintings").tBodies[0].rows].filter((r) => r.querySelector("input[type=checkbox]").checked);
  const paintings = rows.map((r) => r.dataset.name);
  const weights = rows.map((r) => Number(r.querySelector(".weight").value));
  const chosenMasks = paintings.map((p) => masks[p] || null);
  const settings = {
    photo: $("photo").value,
    paintings,
    preset: $("preset").value,
    size: number("size"),
    seed: number("seed") || 0,
    color: $("color").value || null,
    style_loss: $("style_loss").value || null,
  };
  for (const knob of KNOBS) settings[knob] = number(knob);
  if (weights.some((w) => w !== 1)) settings.blend_weights = weights;
  if (chosenMasks.some((m) => m)) settings.masks = chosenMasks;
  return settings;
}

// ---- jobs and events -------------------------------------------------------------------------

function record(id) {
  if (!jobs[id]) jobs[id] = { summary: null, stages: [], losses: {}, caps: {}, progress: "" };
  return jobs[id];
}

function describe(settings) {
  const parts = [settings.paintings.join(" + ") + " on " + settings.photo, settings.preset];
  for (const knob of KNOBS) if (settings[knob] !== null) parts.push(`${knob.replace("_weight", "")}×${settings[knob]}`);
  if (settings.blend_weights) parts.push("blend " + settings.blend_weights.join(":"));
  if (settings.color) parts.push(settings.color);
  if (settings.style_loss) parts.push(settings.style_loss);
  if (settings.masks) parts.push("masked");
  parts.push((settings.size || "preset") + " px", "seed " + settings.seed);
  return parts.join(", ");
}

function onJob(summary) {
  const job = record(summary.id);
  job.summary = summary;
  if (summary.kind === "try" && summary.state === "running" && live !== summary.id) showLive(summary.id);
  if (live === summary.id) drawLive();
  drawQueue();
  drawStrip();
  drawPrints();
}

function onEvent(event) {
  if (event.type === "job") return onJob(event.job);
  const job = record(event.job);
  switch (event.type) {
    case "stage_started":
      job.caps[event.index] = event.cap;
      job.losses[event.index] = [];
      job.progress = `stage ${event.index + 1}/${event.count}, ${event.size[0]}×${event.size[1]} px`;
      break;
    case "progress":
      job.losses[event.index].push([event.done, event.loss]);
      job.progress = job.progress.replace(/: .*$/, "") + `: ${event.done}/${event.cap} evaluations`;
      break;
    case "current":
      job.current = `/api/jobs/${event.job}/current?v=${event.version}`;
      break;
    case "stage":
      job.stages.push(event);
      if (event.loss.length) job.losses[event.index] = event.loss.map((v, i) => [i + 1, v]);
      break;
    case "preset":
      $("saved").textContent = `saved preset ${event.name}: ${event.path}`;
      refreshPresets();
      return;
    default: return;
  }
  if (job.summary && job.summary.kind === "print") drawPrints();
  if (live === event.job) drawLive();
}

function showLive(id) {
  live = id;
  drawLive();
}

function drawLive() {
  const job = jobs[live];
  if (!job || !job.summary) return;
  const s = job.summary;
  $("live-title").textContent = `try ${s.id}: ${s.state}`;
  $("stop").disabled = !["running", "queued"].includes(s.state);
  const last = job.stages[job.stages.length - 1];
  const image = job.current && s.state === "running" ? job.current : last && `/api/jobs/${s.id}/stages/${job.stages.length - 1}`;
  if (image) $("current").src = image;
  $("current-caption").textContent = s.state === "running" ? job.progress : (s.message || s.state);
  $("stop-reason").textContent = job.stages.map((st) => `stage ${st.index + 1}: ${st.stop} after ${st.evaluations} evaluations`).join("; ");
  const strip = $("stages");
  strip.innerHTML = "";
  job.stages.forEach((st, k) => {
    const figure = document.createElement("figure");
    figure.className = "stage";
    figure.innerHTML = `<img alt=""><figcaption class="small muted"></figcaption>`;
    figure.querySelector("img").src = `/api/jobs/${s.id}/stages/${k}`;
    figure.querySelector("figcaption").textContent = `${st.size[0]}×${st.size[1]} px · ${st.stop} · ${st.evaluations} ev`;
    strip.appendChild(figure);
  });
  drawLoss(job);
}

function drawLoss(job) {
  const svg = $("loss");
  const stages = Object.keys(job.losses).map(Number).sort((a, b) => a - b);
  const points = [];
  const bounds = [];
  let offset = 0;
  for (const k of stages) {
    const series = job.losses[k];
    series.forEach(([x, y]) => { if (y > 0 && isFinite(y)) points.push([offset + x, Math.log10(y)]); });
    offset += Math.max(job.caps[k] || 0, series.length ? series[series.length - 1][0] : 0);
    bounds.push(offset);
  }
  if (!points.length) { svg.innerHTML = `<text x="10" y="20">loss (log) per evaluation</text>`; return; }
  const ys = points.map((p) => p[1]);
  const low = Math.min(...ys), high = Math.max(...ys) + 1e-9;
  const X = (x) => 30 + (x / Math.max(offset, 1)) * 320;
  const Y = (y) => 165 - ((y - low) / (high - low || 1)) * 150;
  const path = points.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
  const lines = bounds.slice(0, -1).map((b) => `<line class="boundary" x1="${X(b)}" x2="${X(b)}" y1="10" y2="165"/>`).join("");
  const label = (y) => Number((10 ** y).toPrecision(3));
  svg.innerHTML = `${lines}<polyline class="curve" points="${path}"/>` +
    `<text x="2" y="14">${label(high)}</text><text x="2" y="168">${label(low)}</text>` +
    `<text x="150" y="178">loss (log) per evaluation; stages dashed</text>`;
}

function drawQueue() {
  const list = $("queue");
  list.innerHTML = "";
  for (const job of Object.values(jobs)) {
    const s = job.summary;
    if (!s) continue;
    const item = document.createElement("li");
    item.className = "state-" + s.state;
    const estimate = s.estimate && ["queued", "running"].includes(s.state) ? ` (estimate ${s.estimate})` : "";
    item.textContent = `${s.kind} ${s.id}: ${s.state}${estimate}` + (s.message ? ` — ${s.message}` : "");
    if (["running", "queued"].includes(s.state)) {
      const button = document.createElement("button");
      button.textContent = s.state === "queued" ? "cancel" : "stop";
      button.onclick = () => api("POST", `/api/jobs/${s.id}/stop`);
      item.appendChild(button);
    }
    list.appendChild(item);
  }
}

// ---- compare ---------------------------------------------------------------------------------

function finalImage(job) {
  return job.stages.length ? `/api/jobs/${job.summary.id}/stages/${job.stages.length - 1}` : "";
}

function drawStrip() {
  const strip = $("strip");
  strip.innerHTML = "";
  for (const job of Object.values(jobs)) {
    const s = job.summary;
    if (!s || s.kind !== "try" || !job.stages.length) continue;
    const figure = document.createElement("figure");
    figure.className = "try" + (pick.a === s.id ? " a" : "") + (pick.b === s.id ? " b" : "");
    figure.dataset.id = s.id;
    figure.innerHTML = `<img alt=""><figcaption class="small"></figcaption>` +
      `<button class="pick-a">A</button><button class="pick-b">B</button>`;
    figure.querySelector("img").src = finalImage(job);
    figure.querySelector("figcaption").textContent = `#${s.id} ${s.state}: ${describe(s.settings)}`;
    figure.querySelector(".pick-a").onclick = () => choose("a", s.id);
    figure.querySelector(".pick-b").onclick = () => choose("b", s.id);
    strip.appendChild(figure);
  }
  drawPair();
}

function choose(side, id) {
  pick[side] = id;
  drawStrip();
}

function drawPair() {
  for (const side of ["a", "b"]) {
    const job = jobs[pick[side]];
    const img = $("pair-" + side);
    if (job) img.src = finalImage(job);
    $(`pair-${side}-caption`).textContent = job ? `${side.toUpperCase()}: #${job.summary.id} ${describe(job.summary.settings)}` : `${side.toUpperCase()}: none`;
  }
  const slider = $("compare-mode").value === "slider";
  $("pair").className = "pair " + (slider ? "slider" : "side");
  $("slider").hidden = !slider;
  $("pair").children[1].style.clipPath = slider ? `inset(0 0 0 ${$("slider").value}%)` : "";
  $("keep-title").textContent = pick.a ? `(try ${pick.a}, A)` : "(pick a try as A)";
}

// ---- keep and print --------------------------------------------------------------------------

async function refreshPresets() {
  const state = await api("GET", "/api/state");
  fillPresets(state.presets);
}

function drawPrints() {
  const list = $("prints");
  list.innerHTML = "";
  for (const job of Object.values(jobs)) {
    const s = job.summary;
    if (!s || s.kind !== "print") continue;
    const item = document.createElement("li");
    item.className = "print state-" + s.state;
    const progress = s.state === "running" ? ` — ${job.progress}` : "";
    const estimate = s.estimate && ["queued", "running"].includes(s.state) ? ` — estimate ${s.estimate}` : "";
    item.textContent = `print ${s.id} of try ${s.settings.try} (${s.settings.print_size} at ${s.settings.dpi} DPI, ` +
      `${s.settings.bit_depth} bit ${s.settings.format}): ${s.state}${progress}${estimate}` + (s.message ? ` — ${s.message}` : "");
    list.appendChild(item);
  }
}

// ---- masks -----------------------------------------------------------------------------------

let maskFor = null;

function openMask(painting) {
  maskFor = painting;
  $("mask-painting").textContent = painting;
  const photo = $("mask-photo");
  photo.onload = () => {
    const canvas = $("mask-canvas");
    const scale = Math.min(1, 1024 / Math.max(photo.naturalWidth, photo.naturalHeight));
    canvas.width = Math.round(photo.naturalWidth * scale);
    canvas.height = Math.round(photo.naturalHeight * scale);
    fillMask("black");
  };
  photo.src = "/api/images/" + encodeURIComponent($("photo").value);
  $("mask-dialog").showModal();
}

function fillMask(color) {
  const canvas = $("mask-canvas");
  const context = canvas.getContext("2d");
  context.fillStyle = color;
  context.fillRect(0, 0, canvas.width, canvas.height);
}

function brush(event) {
  if (!(event.buttons & 1)) return;
  const canvas = $("mask-canvas");
  const box = canvas.getBoundingClientRect();
  const scale = canvas.width / box.width;
  const context = canvas.getContext("2d");
  context.fillStyle = $("erase").checked ? "black" : "white";
  context.beginPath();
  context.arc((event.clientX - box.left) * scale, (event.clientY - box.top) * scale, $("brush").value * scale / 2, 0, 2 * Math.PI);
  context.fill();
}

async function keepMask(blob) {
  const saved = await api("PUT", "/api/masks?painting=" + encodeURIComponent(maskFor), undefined, blob);
  masks[maskFor] = saved.name;
  showMask(maskFor);
  $("mask-dialog").close();
}

// ---- wiring ----------------------------------------------------------------------------------

function follow(since) {
  const source = new EventSource("/api/events?since=" + since);
  source.onopen = () => { $("connection").textContent = "connected"; };
  source.onerror = () => { $("connection").textContent = "reconnecting…"; };
  source.onmessage = (message) => onEvent(JSON.parse(message.data));
}

function forgetToken() {
  // the address the studio printed carries its token; the cookie holds it from now on
  if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", "/");
}

function wire() {
  $("upload").onchange = (e) => upload(e.target.files).catch(() => {});
  $("preset").onchange = () => loadPreset().catch(() => {});
  $("render").onclick = () => startJob("/api/tries", trySettings())
    .then((r) => { showLive(r.id); $("live").scrollIntoView({ block: "start" }); })
    .catch(() => {});
  $("stop").onclick = () => live && api("POST", `/api/jobs/${live}/stop`).catch(() => {});
  $("compare-mode").onchange = drawPair;
  $("slider").oninput = drawPair;
  $("save-preset").onclick = () => {
    if (!pick.a) return showError("pick a try as A first");
    api("POST", `/api/jobs/${pick.a}/preset`, { name: $("preset-name").value.trim() }).catch(() => {});
  };
  $("print").onclick = () => {
    if (!pick.a) return showError("pick a try as A first");
    const body = { print_size: $("print_size").value, dpi: number("dpi"), bit_depth: Number($("bit_depth").value), format: $("format").value };
    startJob(`/api/jobs/${pick.a}/print`, body).catch(() => {});
  };
  const canvas = $("mask-canvas");
  canvas.onpointerdown = brush;
  canvas.onpointermove = brush;
  $("mask-fill").onclick = () => fillMask("white");
  $("mask-clear").onclick = () => fillMask("black");
  $("mask-save").onclick = () => canvas.toBlob((blob) => keepMask(blob).catch(() => {}), "image/png");
  $("mask-upload").onchange = (e) => e.target.files[0] && keepMask(e.target.files[0]).catch(() => {});
  $("mask-none").onclick = () => { delete masks[maskFor]; showMask(maskFor); $("mask-dialog").close(); };
  $("mask-cancel").onclick = () => $("mask-dialog").close();
}

async function start() {
  forgetToken();
  wire();
  const state = await api("GET", "/api/state");
  $("where").textContent = `${state.folder} → ${state.out}`;
  fillInputs(state.inputs);
  fillPresets(state.presets);
  for (const id of ["color", "style_loss"]) {
    option($(id), "", "preset's");
    state.choices[id].forEach((c) => option($(id), c));
  }
  state.choices.bit_depth.forEach((b) => option($("bit_depth"), b));
  state.choices.format.forEach((f) => option($("format"), f));
  if (state.presets.some((p) => p.name === "draft")) $("preset").value = "draft";
  await loadPreset();
  follow(0);
}

start().catch((e) => showError(String(e.message || e)));
