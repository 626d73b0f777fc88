// The photo tool's page: open photos, see their faces numbered, click one, pick the same
// person's face from another photo or an uploaded reference, compare before / after with a
// slider, download the edited file (watermarked, with provenance). Talks only to the local server:
// its token came as a cookie when the URL printed at start was opened, and goes with every call.
"use strict";

const state = { photos: [], current: null, face: null };
const $ = (id) => document.getElementById(id);

async function call(url, options = {}) {
  document.body.classList.add("busy");
  try {
    const r = await fetch(url, options);
    const data = await r.json();
    if (!r.ok) throw new Error(data.error || `${url}: ${r.status}`);
    $("error").textContent = "";
    return data;
  } catch (err) {
    $("error").textContent = err.message;
    throw err;
  } finally {
    document.body.classList.remove("busy");
  }
}

async function upload(file, role) {
  const q = new URLSearchParams({ name: file.name, role });
  // the file's own image type: never a type a form could send (the server refuses those)
  return call(`/api/photos?${q}`, { method: "POST", body: file,
    headers: { "Content-Type": file.type || "application/octet-stream" } });
}

function photo(id) { return state.photos.find((p) => p.id === id); }

function replacePhoto(p) {
  const i = state.photos.findIndex((q) => q.id === p.id);
  if (i >= 0) state.photos[i] = p; else state.photos.push(p);
}

function drawStrip() {
  const strip = $("strip");
  strip.innerHTML = "";
  for (const p of state.photos) {
    const cell = document.createElement("div");
    cell.className = `thumb ${p.role}` + (p.id === state.current ? " selected" : "");
    cell.dataset.id = p.id;
    const img = document.createElement("img");
    img.src = `/api/photos/${p.id}/original.jpg`;
    img.alt = p.name;
    const label = document.createElement("div");
    label.className = "label";
    label.textContent = `${p.name}${p.role === "reference" ? " (reference)" : ""} · ${p.faces.length} face(s)`;
    cell.append(img, label);
    cell.addEventListener("click", () => show(p.id));
    strip.append(cell);
  }
}

function show(id) {
  state.current = id;
  state.face = null;
  const p = photo(id);
  drawStrip();
  $("before").src = `/api/photos/${id}/original.jpg`;
  const stage = $("stage");
  for (const box of stage.querySelectorAll(".face")) box.remove();
  const replaced = new Set(p.swaps.map((s) => s.face));
  for (const f of p.faces) {
    const [x0, y0, x1, y1] = f.box;
    const box = document.createElement("div");
    box.className = "face" + (replaced.has(f.face) ? " replaced" : "");
    box.dataset.index = f.face;
    Object.assign(box.style, { left: `${(100 * x0) / p.width}%`, top: `${(100 * y0) / p.height}%`,
      width: `${(100 * (x1 - x0)) / p.width}%`, height: `${(100 * (y1 - y0)) / p.height}%` });
    const n = document.createElement("span");
    n.textContent = f.face;
    box.append(n);
    box.addEventListener("click", (e) => { e.stopPropagation(); selectFace(f.face); });
    stage.append(box);
  }
  showResult(p);
  $("face-of").textContent = "(click a face)";
  $("face-info").textContent = "";
  $("candidates").innerHTML = "";
}

function showResult(p) {
  const after = $("after");
  document.body.classList.toggle("edited", p.edited);
  after.hidden = !p.edited;
  if (p.edited) {
    after.src = `/api/photos/${p.id}/result.jpg?v=${p.swaps.map((s) => `${s.face}-${s.source}-${s.source_face}`).join(".")}`;
    $("download").href = `/api/photos/${p.id}/download`;
    $("download").setAttribute("download", p.download);
    slide();
  }
}

function slide() {
  // the after image shows right of the slider, the before image left of it
  $("after").style.clipPath = `inset(0 0 0 ${$("slider").value}%)`;
}

async function selectFace(index) {
  state.face = index;
  for (const box of document.querySelectorAll("#stage .face")) box.classList.toggle("selected", Number(box.dataset.index) === index);
  const p = photo(state.current);
  const f = p.faces[index];
  $("face-of").textContent = `${index} of ${p.name}`;
  $("face-info").textContent = `eyes open ${f.eyes_open ?? "?"} · smile ${f.smile ?? "?"} · yaw ${f.yaw ?? "?"}`;
  const data = await call(`/api/photos/${p.id}/faces/${index}/candidates`);
  const list = $("candidates");
  list.innerHTML = "";
  if (!data.candidates.length) list.textContent = "No other photo shows this person: open one, or upload a reference.";
  for (const c of data.candidates) {
    const fig = document.createElement("figure");
    fig.className = "cand";
    fig.dataset.photo = c.photo;
    fig.dataset.face = c.face;
    const img = document.createElement("img");
    img.src = `/api/photos/${c.photo}/faces/${c.face}.jpg`;
    img.alt = `${c.name} face ${c.face}`;
    const cap = document.createElement("figcaption");
    cap.textContent = `${c.name} #${c.face}${c.role === "reference" ? " (reference)" : ""} · score ${c.score} · eyes ${c.eyes_open ?? "?"} · id ${c.distance ?? "?"}`;
    fig.append(img, cap);
    fig.addEventListener("click", () => replaceWith(c.photo, c.face));
    list.append(fig);
  }
}

async function replaceWith(source, sourceFace) {
  const p = await call("/api/replace", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ photo: state.current, face: state.face, source, source_face: sourceFace, region: $("region").value }) });
  replacePhoto(p);
  const face = state.face;
  show(p.id);
  $("status").textContent = `${p.name}: face ${face} replaced; drag the slider to compare`;
  await selectFace(face);  // keep the face's panel: another candidate can be tried
}

$("open").addEventListener("change", async (e) => {
  const files = [...e.target.files];
  let first = null;
  for (const file of files) {
    $("status").textContent = `finding faces in ${file.name}...`;
    try {
      const p = await upload(file, "photo");
      replacePhoto(p);
      first = first || p.id;
      drawStrip();
    } catch (err) { /* shown in #error; the other files still open */ }
  }
  $("status").textContent = `${state.photos.length} photo(s) open: click a face`;
  if (first) show(first);
  e.target.value = "";
});

$("reference").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  try {
    const p = await upload(file, "reference");
    replacePhoto(p);
    drawStrip();
    if (state.face !== null) await selectFace(state.face);
  } finally { e.target.value = ""; }
});

$("slider").addEventListener("input", slide);
$("reset").addEventListener("click", async () => {
  const p = await call(`/api/photos/${state.current}/reset`, { method: "POST",
    headers: { "Content-Type": "application/json" }, body: "{}" });
  replacePhoto(p);
  show(p.id);
});
