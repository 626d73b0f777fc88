// The shard browser: one set at a time, its images as a grid, label-map overlays, the lighting
// variants, captions and metadata of the selected image. Talks only to the local server.
"use strict";

const state = { sets: [], pos: 0, meta: null, selected: null };
const $ = (id) => document.getElementById(id);

async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}

function fileUrl(set, field) {
  return `/file/${encodeURIComponent(set.split)}/${encodeURIComponent(set.key)}/${encodeURIComponent(field)}`;
}

async function loadSets() {
  const q = new URLSearchParams({
    identity: $("f-identity").value, expression: $("f-expression").value, pose: $("f-pose").value,
  });
  const data = await getJSON(`/api/sets?${q}`);
  if (!$("f-pose").options.length) {
    for (const p of data.poses) $("f-pose").add(new Option(p, p === "all" ? "" : p));
  }
  if ($("f-identity").options.length === 1) {
    for (const id of data.identities) $("f-identity").add(new Option(id, id));
  }
  state.sets = data.sets;
  state.pos = 0;
  $("empty").style.display = state.sets.length ? "none" : "block";
  await show();
}

async function show() {
  const grid = $("grid");
  grid.innerHTML = "";
  if (!state.sets.length) {
    $("set-title").textContent = "";
    $("counter").textContent = "0 / 0";
    return;
  }
  const set = state.sets[state.pos];
  const data = await getJSON(`/api/set/${encodeURIComponent(set.split)}/${encodeURIComponent(set.key)}`);
  state.meta = data.meta;
  $("counter").textContent = `${state.pos + 1} / ${state.sets.length}`;
  $("set-title").textContent = set.key;
  $("set-info").textContent = `${set.split} · ${data.meta.participant_id} · ${data.meta.category || ""} · ${set.shard}`;
  for (const img of data.meta.images) {
    const cell = document.createElement("div");
    cell.className = "cell" + (set.match.includes(img.index) ? "" : " dim");
    cell.dataset.index = img.index;
    const photo = document.createElement("img");
    photo.className = "photo";
    photo.alt = img.index;
    photo.src = fileUrl(set, `${img.index}.jpg`);
    const overlay = document.createElement("img");
    overlay.className = "overlay";
    overlay.alt = `${img.index} labels`;
    overlay.src = `/overlay/${encodeURIComponent(set.split)}/${encodeURIComponent(set.key)}/${img.index}.png`;
    const label = document.createElement("div");
    label.className = "label";
    label.textContent = `${img.index} ${img.kind === "neutral" ? "neutral" : (img.driver_label || img.driving_video || "")}`;
    cell.append(photo, overlay, label);
    cell.addEventListener("click", () => select(img.index));
    grid.append(cell);
  }
  select(set.match[0] || data.meta.images[0].index);
}

function select(index) {
  const set = state.sets[state.pos];
  const img = state.meta.images.find((i) => i.index === index);
  state.selected = index;
  for (const cell of document.querySelectorAll(".cell")) cell.classList.toggle("selected", cell.dataset.index === index);
  $("lighting-of").textContent = index;
  const lighting = $("lighting");
  lighting.innerHTML = "";
  const variants = [{ variant: "r0", envmap: "original" }, ...(img.relit || [])];
  for (const v of variants) {
    const fig = document.createElement("figure");
    const pic = document.createElement("img");
    pic.className = "variant";
    pic.alt = v.variant;
    pic.src = fileUrl(set, v.variant === "r0" ? `${index}.jpg` : `${index}.${v.variant}.jpg`);
    const cap = document.createElement("figcaption");
    cap.textContent = `${v.variant} ${v.envmap || ""}`;
    fig.append(pic, cap);
    lighting.append(fig);
  }
  $("caption").textContent = img.caption || "";
  const { images, labels, ...setMeta } = state.meta;
  $("meta").textContent = JSON.stringify({ image: img, set: setMeta }, null, 1);
}

function step(delta) {
  if (!state.sets.length) return;
  state.pos = (state.pos + delta + state.sets.length) % state.sets.length;
  show();
}

$("prev").addEventListener("click", () => step(-1));
$("next").addEventListener("click", () => step(1));
$("apply").addEventListener("click", loadSets);
$("overlay").addEventListener("change", (e) => document.body.classList.toggle("overlay-on", e.target.checked));
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" && e.target.type === "text") return;
  if (e.key === "ArrowRight") step(1);
  if (e.key === "ArrowLeft") step(-1);
});
loadSets();
