/* SmartTrees field app: scan or type a tag's code, see the item, record custody events offline.
 *
 * Every rule comes from the server as data (rules.json, built by barcodes/rules.py): the code's
 * shape and check alphabet, each item type's events with the states they follow and the fields
 * they need. Events wait in IndexedDB, each with its client event id and this device's id, until
 * POST /api/scans takes them; the server is idempotent on (device_id, client_event_id), so a
 * batch resent after a cut is recorded once. A refused event stays in the queue, with the
 * server's rule and message, until the user drops it or edits and resends it.
 */
"use strict";

const API = "../api/";
const BATCH = 200;
const SHOWN_PENDING = 50;
const BACKOFF_MS = [1000, 2000, 5000, 10000, 30000, 60000];
const TOKEN_KEY = "smarttrees.field.token";
const DEVICE_KEY = "smarttrees.field.device";
const RULES_KEY = "smarttrees.field.rules";
const REFERENCE_KEY = "smarttrees.field.reference";
const CARE_KEY = "smarttrees.field.care";
const USER_KEY = "smarttrees.field.user";
const TEAM_KEY = "smarttrees.field.team";

const $ = (id) => document.getElementById(id);
const state = {
  lang: "vi",
  i18n: null, // the shared loader's catalogue of the language chosen (static/i18n.js)
  rules: null,
  item: null, // {code, item_type, trace|null, status|null, offline}
  map: null,
  eventType: null,
  editing: null, // client_event_id of the refused event (or tree check) being edited
  editingDamage: null, // client_event_id of the refused damage record being edited
  syncing: false,
  failures: 0,
  retryTimer: null,
};

/** The text of the field app's message `key` (catalogue key "fieldapp.<key>") in the language chosen. */
function t(key, values) {
  return state.i18n ? state.i18n.t(`fieldapp.${key}`, values) : key;
}

/** A refusal as the phone shows it: the rule in the page's language where the catalogues name
 * it (fieldapp.rule_<rule>) with its stable name, then the server's message. */
function problemText(problem) {
  const key = `fieldapp.rule_${problem.rule}`;
  const named = state.i18n?.has(key) ? `${state.i18n.t(key)} (${problem.rule})` : problem.rule;
  return `${named}: ${problem.message}`;
}

/** A refusal from a route's error document: its domain rule, else its exception code. */
function refusal(response, body) {
  return { rule: body?.rule || body?.code || `HTTP ${response.status}`, message: body?.description || String(response.status), status: response.status };
}

function deviceId() {
  let id = localStorage.getItem(DEVICE_KEY);
  if (!id) {
    id = crypto.randomUUID();
    localStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

function say(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = kind === "info" ? "info" : "";
  box.hidden = !text;
}

/* ---- codes: the MOD 37-36 check of barcodes/codes.py, with the server's alphabet ---------- */

function compact(text) {
  return text.replace(/[\s-]/g, "").toUpperCase();
}

/** The ISO 7064 hybrid-system check character of `body` (python-stdnum's mod_37_36). */
function checkCharacter(body, alphabet) {
  const m = alphabet.length;
  let check = Math.floor(m / 2);
  for (const ch of body) {
    const value = alphabet.indexOf(ch);
    if (value < 0) return null;
    check = ((((check || m) * 2) % (m + 1)) + value) % m;
  }
  return alphabet[(((1 - (((check || m) * 2) % (m + 1))) % m) + m) % m];
}

function canonical(prefix, digits, check, width) {
  return `${prefix}-${digits.padStart(width, "0")}-${check}`;
}

/** {ok, code, itemType} or {ok: false, reason: "incomplete"|"shape"|"prefix"|"check"}. */
function checkCode(text) {
  const rules = state.rules.code;
  const raw = compact(text);
  if (!raw) return { ok: false, reason: "empty" };
  const match = raw.match(new RegExp(rules.pattern));
  if (!match) {
    const partial = /^[A-Z]{0,2}$|^[A-Z]{2}\d*$/.test(raw);
    return { ok: false, reason: partial ? "incomplete" : "shape" };
  }
  const [, prefix, digits, check] = match;
  if (!(prefix in rules.prefixes)) return { ok: false, reason: "prefix" };
  // Until the number is complete the last digit is not yet a check character.
  if (digits.length < rules.number_width && /\d/.test(check)) return { ok: false, reason: "incomplete" };
  if (checkCharacter(prefix + digits, rules.check_alphabet) !== check) return { ok: false, reason: "check" };
  const code = `${prefix}-${digits}-${check}`;
  return { ok: true, code, itemType: rules.prefixes[prefix] };
}

/** Our code in a scanned symbol's text: plain, GS1 (10)/(21), or a tree tag's URL. */
function codeFromSymbol(text) {
  const gs = state.rules.gs1.group_separator;
  let candidate = text;
  if (text.startsWith("(") || text.startsWith(gs) || /^01\d{14}/.test(text)) {
    const fields = parseElementString(text);
    candidate = fields["21"] || fields["10"] || "";
  } else {
    const tree = text.match(new RegExp(state.rules.tree_url_pattern));
    if (tree) {
      const prefix = state.rules.item_types.tree.prefix;
      const digits = tree[1].padStart(state.rules.code.number_width, "0");
      return `${prefix}-${digits}-${checkCharacter(prefix + digits, state.rules.code.check_alphabet)}`;
    }
  }
  const result = checkCode(candidate);
  return result.ok ? result.code : null;
}

function parseElementString(text) {
  const { ais, group_separator: gs } = state.rules.gs1;
  if (text.startsWith("(")) {
    return Object.fromEntries([...text.matchAll(/\((\d{2,4})\)([^(]*)/g)].map((m) => [m[1], m[2]]));
  }
  const fields = {};
  let rest = text.replace(/^[\x1d\xf1]+/, "");
  while (rest) {
    const ai = rest.slice(0, 2);
    if (!(ai in ais)) break;
    const [fixed] = ais[ai];
    rest = rest.slice(2);
    if (fixed !== null) {
      fields[ai] = rest.slice(0, fixed);
      rest = rest.slice(fixed);
    } else {
      const end = rest.indexOf(gs);
      fields[ai] = end < 0 ? rest : rest.slice(0, end);
      rest = end < 0 ? "" : rest.slice(end + 1);
    }
  }
  return fields;
}

/* ---- the queue: IndexedDB ------------------------------------------------------------------ */

let dbPromise = null;

function db() {
  dbPromise ??= new Promise((resolve, reject) => {
    const request = indexedDB.open("smarttrees-field", 2);
    request.onupgradeneeded = () => {
      const handle = request.result;
      const stores = [["queue", "client_event_id"], ["items", "code"], ["checks", "client_event_id"], ["photos", "id"]];
      for (const [name, keyPath] of stores) {
        if (!handle.objectStoreNames.contains(name)) handle.createObjectStore(name, { keyPath });
      }
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  return dbPromise;
}

async function store(name, mode, work) {
  const handle = await db();
  return new Promise((resolve, reject) => {
    const tx = handle.transaction(name, mode);
    const result = work(tx.objectStore(name));
    tx.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

const queueAll = async () => (await store("queue", "readonly", (s) => s.getAll())).sort((a, b) => a.seq - b.seq);
const queuePut = (records) => store("queue", "readwrite", (s) => records.forEach((r) => s.put(r)));
const queueDelete = (ids) => store("queue", "readwrite", (s) => ids.forEach((id) => s.delete(id)));
const checksAll = async () => (await store("checks", "readonly", (s) => s.getAll())).sort((a, b) => a.seq - b.seq);
const checksPut = (records) => store("checks", "readwrite", (s) => records.forEach((r) => s.put(r)));
const checksDelete = (ids) => store("checks", "readwrite", (s) => ids.forEach((id) => s.delete(id)));
const photoGet = (id) => store("photos", "readonly", (s) => s.get(id));
const photosPut = (records) => store("photos", "readwrite", (s) => records.forEach((r) => s.put(r)));
const photosDelete = (ids) => store("photos", "readwrite", (s) => ids.forEach((id) => s.delete(id)));

/* ---- signing in ---------------------------------------------------------------------------- */

function token() {
  return localStorage.getItem(TOKEN_KEY);
}

async function signIn() {
  const value = $("token").value.trim();
  if (!value) return;
  try {
    const response = await fetch("me", { headers: { Authorization: `Bearer ${value}` } });
    if (!response.ok) {
      say(t("signin_bad"));
      return;
    }
    localStorage.setItem(USER_KEY, (await response.json()).username);
  } catch {
    say(t("signin_offline"));
    return;
  }
  localStorage.setItem(TOKEN_KEY, value);
  loadTeam().then(loadStands);
  $("token").value = "";
  say("");
  show();
  sync();
}

function signOut() {
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TEAM_KEY);
  show();
}

function show() {
  const signedIn = Boolean(token());
  $("signin").hidden = signedIn;
  $("scan").hidden = !signedIn;
  if (!signedIn) $("item").hidden = true;
  if (!signedIn) $("damage").hidden = true;
  if (!signedIn) $("area").hidden = true;
}

/* ---- typing and scanning a code ------------------------------------------------------------ */

function onCodeInput() {
  const result = checkCode($("code").value);
  const status = $("code-status");
  const messages = { shape: "code_shape", prefix: "code_prefix", check: "code_check", incomplete: "code_incomplete" };
  status.textContent = result.ok ? t("code_ok") : result.reason === "empty" ? "" : t(messages[result.reason]);
  status.className = `status ${result.ok ? "ok" : result.reason === "incomplete" ? "wait" : "bad"}`;
  $("code").setAttribute("aria-invalid", String(!result.ok && !["incomplete", "empty"].includes(result.reason)));
  $("lookup").disabled = !result.ok;
}

/** Show the item `code` names; `editing` is the refused event this look-up is to replace. */
async function lookUp(code, editing = null) {
  const result = checkCode(code);
  if (!result.ok) return;
  state.editing = editing;
  say("");
  let trace = null;
  let offline = false;
  try {
    const response = await fetch(`${API}trace/${encodeURIComponent(result.code)}`, {
      headers: { Authorization: `Bearer ${token()}` },
    });
    if (response.status === 404) {
      $("item").hidden = true;
      say(`${result.code}: ${t("unknown_item")}`);
      return;
    }
    if (response.status === 401) return sessionExpired();
    if (!response.ok) throw new Error(String(response.status));
    trace = await response.json();
    await store("items", "readwrite", (s) => s.put(trace));
  } catch {
    offline = true;
    trace = (await store("items", "readonly", (s) => s.get(result.code))) || null;
  }
  state.item = { code: result.code, item_type: result.itemType, trace, offline };
  await renderItem();
}

const camera = { stream: null, timer: null, detector: null, zxingReady: null };

async function startCamera() {
  if (camera.stream) return stopCamera();
  try {
    camera.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
  } catch {
    say(t("camera_none"));
    return;
  }
  const video = $("camera");
  video.srcObject = camera.stream;
  video.hidden = false;
  await video.play();
  $("camera-btn").textContent = t("camera_stop");
  camera.timer = setInterval(scanFrame, 300);
}

function stopCamera() {
  clearInterval(camera.timer);
  camera.stream?.getTracks().forEach((track) => track.stop());
  camera.stream = null;
  $("camera").hidden = true;
  $("camera-btn").textContent = t("camera");
}

/** The texts of the symbols in the current frame: BarcodeDetector if the browser has it, else zxing-wasm. */
async function decodeFrame(video) {
  if ("BarcodeDetector" in window) {
    camera.detector ??= new window.BarcodeDetector({ formats: ["code_128", "qr_code"] });
    return (await camera.detector.detect(video)).map((found) => found.rawValue);
  }
  camera.zxingReady ??= window.ZXingWASM.prepareZXingModule({
    overrides: { locateFile: (path, prefix) => (path.endsWith(".wasm") ? `static/vendor/zxing-wasm/${path}` : prefix + path) },
    fireImmediately: true,
  });
  await camera.zxingReady;
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  if (!canvas.width) return [];
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(video, 0, 0);
  const image = context.getImageData(0, 0, canvas.width, canvas.height);
  const results = await window.ZXingWASM.readBarcodes(image, { formats: ["Code128", "QRCode"], tryHarder: true });
  return results.filter((r) => r.isValid).map((r) => r.text);
}

let scanning = false;
async function scanFrame() {
  if (scanning || !camera.stream) return;
  scanning = true;
  try {
    for (const text of await decodeFrame($("camera"))) {
      const code = codeFromSymbol(text);
      if (code) {
        stopCamera();
        $("code").value = code;
        onCodeInput();
        say(`${t("scanned")}: ${code}`, "info");
        await lookUp(code);
        break;
      }
    }
  } catch (error) {
    console.warn("decode failed", error);
  } finally {
    scanning = false;
  }
}

/* ---- the item and the events it allows ----------------------------------------------------- */

/** The item's state: the server's, moved on by the events still waiting in the queue. */
async function currentStatus(item) {
  const order = state.rules.item_types[item.item_type].states;
  let status = item.trace?.item?.status ?? null;
  if (status === null && !item.trace) return null;
  const events = state.rules.item_types[item.item_type].events;
  for (const record of await queueAll()) {
    if (record.event.code !== item.code || record.state !== "pending") continue;
    const next = events[record.event.event_type]?.to;
    if (next && (status === null || order.indexOf(next) > order.indexOf(status))) status = next;
  }
  return status;
}

function allowedEvents(itemType, status, known) {
  const events = state.rules.item_types[itemType].events;
  return Object.keys(events).filter((name) => {
    const from = events[name].from;
    return !known || from.length === 0 || from.includes(status);
  });
}

async function renderItem() {
  const item = state.item;
  const { trace } = item;
  $("item").hidden = false;
  $("item-code").textContent = item.code;
  const status = await currentStatus(item);
  const known = Boolean(trace) && (status !== null || state.rules.item_types[item.item_type].states.length === 0);
  const summary = $("item-summary");
  summary.textContent = item.offline ? (trace ? t("offline_copy") : t("offline_unknown")) : "";
  summary.className = `status ${item.offline ? "wait" : ""}`;
  const details = [[t("type"), t(item.item_type)]];
  if (status) details.push([t("state"), t(`ev_${status}`)]); // a state is named for the event that led to it
  if (trace?.item?.species) details.push([t("species"), trace.item.species]);
  const origin = trace?.item?.nursery || trace?.item?.stand_code || trace?.item?.commune_code;
  if (origin) details.push([t("origin"), origin]);
  if (trace?.item?.quantity != null) {
    details.push([t("quantity_left"), String(trace.item.quantity - (trace.item.quantity_dispatched || 0))]);
  }
  $("item-details").replaceChildren(...details.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
  const last = (trace?.events || []).slice(-5).reverse();
  $("item-events").replaceChildren(
    ...last.map((e) => el("li", `${e.occurred_at.slice(0, 16).replace("T", " ")} · ${t(`ev_${e.event_type}`)}`)),
  );
  drawRoute(trace);
  // A tree picked on the map may carry no tag: only its tree check, which needs none.
  const allowed = item.picked ? [] : allowedEvents(item.item_type, status, known);
  if (item.item_type === "tree" && state.care) allowed.unshift("tree_check");
  const buttons = allowed.map((name) => {
    const button = el("button", t(`ev_${name}`));
    button.type = "button";
    button.dataset.event = name;
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("click", () => chooseEvent(name));
    return button;
  });
  $("event-types").replaceChildren(...(buttons.length ? buttons : [el("p", t("no_events"))]));
  $("event-form").hidden = true;
  state.eventType = null;
}

/** The item's way on a small map: its origin, then every scan (no basemap: works offline). */
function drawRoute(trace) {
  const places = [trace?.origin, ...(trace?.events || []).map((e) => e.location)].filter(Boolean);
  const box = $("item-map");
  box.hidden = !places.length || !window.maplibregl;
  if (box.hidden) return;
  const data = {
    type: "FeatureCollection",
    features: [
      { type: "Feature", geometry: { type: "LineString", coordinates: places }, properties: {} },
      ...places.map((p, i) => ({ type: "Feature", geometry: { type: "Point", coordinates: p }, properties: { last: i === places.length - 1 } })),
    ],
  };
  const lons = places.map((p) => p[0]);
  const lats = places.map((p) => p[1]);
  const bounds = [[Math.min(...lons), Math.min(...lats)], [Math.max(...lons), Math.max(...lats)]];
  try {
    if (!state.map) {
      state.map = new window.maplibregl.Map({
        container: box,
        style: {
          version: 8,
          sources: { route: { type: "geojson", data } },
          layers: [
            { id: "bg", type: "background", paint: { "background-color": "#eef1ea" } },
            { id: "line", type: "line", source: "route", paint: { "line-color": "#0b3d1f", "line-width": 3 } },
            {
              id: "points", type: "circle", source: "route", filter: ["==", ["geometry-type"], "Point"],
              paint: { "circle-radius": 7, "circle-color": ["case", ["get", "last"], "#b00020", "#0b3d1f"], "circle-stroke-color": "#fff", "circle-stroke-width": 2 },
            },
          ],
        },
        bounds,
        fitBoundsOptions: { padding: 30, maxZoom: 15 },
        attributionControl: false,
        interactive: false,
      });
    } else {
      const update = () => {
        state.map.getSource("route").setData(data);
        state.map.resize();
        state.map.fitBounds(bounds, { padding: 30, maxZoom: 15, animate: false });
      };
      if (state.map.loaded()) update();
      else state.map.once("load", update);
    }
  } catch (error) {
    box.hidden = true; // no WebGL on this phone: the list of events still says it all
    console.warn("no map", error);
  }
}

function el(tag, text) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  return node;
}

function chooseEvent(name, values = {}) {
  state.eventType = name;
  for (const button of $("event-types").querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(button.dataset.event === name));
  }
  if (name === "tree_check") return chooseCheck(values);
  const rule = state.rules.item_types[state.item.item_type].events[name];
  const names = [...rule.needs, ...rule.uses, "note"];
  $("event-fields").replaceChildren(...names.map((field) => fieldInput(field, rule.needs.includes(field), values[field])));
  if (rule.exactly_one.length) $("event-fields").append(Object.assign(el("p", t("exactly_one")), { className: "hint" }));
  $("event-form").hidden = false;
}

function fieldInput(name, required, value) {
  const schema = state.rules.fields[name];
  const wrap = el("div");
  const label = el("label", t(`f_${name}`) + (required ? ` (${t("required")})` : ""));
  label.htmlFor = `f-${name}`;
  let input;
  const choices = schema.enum ? schema.enum.map((v) => [v, t(v)]) : referenceChoices(name);
  if (choices) {
    input = el("select");
    input.append(el("option", ""), ...choices.map(([v, text]) => Object.assign(el("option", text), { value: v })));
  } else {
    input = el("input");
    if (schema.type === "integer" || schema.type === "number") {
      input.type = "number";
      input.inputMode = schema.type === "integer" ? "numeric" : "decimal";
      input.step = schema.type === "integer" ? "1" : "any";
    }
    if (schema.maxLength) input.maxLength = schema.maxLength;
  }
  input.id = `f-${name}`;
  input.name = name;
  if (value != null) input.value = String(value);
  const problem = Object.assign(el("p"), { className: "status bad", id: `f-${name}-problem` });
  wrap.append(label, input, problem);
  return wrap;
}

/** Choices a field takes from the reference data kept on the phone, or null (free text). */
function referenceChoices(name) {
  if (name === "to_stand") {
    const stands = JSON.parse(localStorage.getItem(STANDS_KEY) || "[]");
    return stands.length ? stands.map((code) => [code, code]) : null;
  }
  const communes = JSON.parse(localStorage.getItem(REFERENCE_KEY) || "null")?.communes;
  if (name !== "to_commune" || !communes?.length) return null;
  return communes.map((c) => [c.code, `${c.name} (${c.code})`]);
}

const STANDS_KEY = "smarttrees.field.stands";
const STANDS_AROUND_DEG = 0.05; // about 5 km around the phone: the team's working area

/** The plantation stands of the team's area, else around the phone (their codes), kept for
 * offline use. */
async function loadStands() {
  let bbox = JSON.parse(localStorage.getItem(TEAM_KEY) || "null")?.bbox;
  if (!bbox) {
    const where = await position();
    if (!where) return;
    const [lon, lat] = where;
    bbox = [lon - STANDS_AROUND_DEG, lat - STANDS_AROUND_DEG, lon + STANDS_AROUND_DEG, lat + STANDS_AROUND_DEG];
  }
  try {
    const response = await fetch(`../collections/stands/items?f=json&limit=1000&bbox=${bbox.map((v) => v.toFixed(5)).join(",")}`);
    if (!response.ok) return;
    const codes = (await response.json()).features.map((f) => f.properties.stand_code).filter(Boolean).sort();
    localStorage.setItem(STANDS_KEY, JSON.stringify(codes));
  } catch {
    // offline: the copy kept last time serves
  }
}

/** The account's team and the items issued to it (GET /field/team, a page at a time until its
 * `next` is null), kept on the phone: each item as its trace, where a look-up without signal
 * finds it. The team's count is kept only once every page has arrived. */
async function loadTeam() {
  try {
    let after = null;
    let count = 0;
    let answer;
    do {
      const query = after ? `?after=${encodeURIComponent(after)}` : "";
      const response = await fetch(`team${query}`, { headers: { Authorization: `Bearer ${token()}` } });
      if (!response.ok) return;
      answer = await response.json();
      const items = answer.items;
      if (items.length) await store("items", "readwrite", (s) => items.forEach((item) => s.put(item)));
      count += items.length;
      after = answer.next;
    } while (after);
    const team = answer.team ? { ...answer.team, items: count, date: localDate() } : null;
    localStorage.setItem(TEAM_KEY, JSON.stringify(team));
  } catch {
    // offline: the items kept last time serve
  }
  showTeam();
}

function showTeam() {
  const team = JSON.parse(localStorage.getItem(TEAM_KEY) || "null");
  $("team").textContent = team ? t("team_kept", { name: team.name, items: team.items, date: team.date }) : "";
}

/** The reference data of the web map (species, communes), kept for offline use. */
async function loadReference() {
  try {
    const response = await fetch("../map/options.json");
    if (response.ok) localStorage.setItem(REFERENCE_KEY, JSON.stringify(await response.json()));
  } catch {
    // offline: the copy kept last time serves
  }
}

/** The event's fields from the form, checked by the field schemas; {values} or {problems}. */
function readFields(rule) {
  const values = {};
  const problems = {};
  for (const input of $("event-fields").querySelectorAll("input, select")) {
    const name = input.name;
    const schema = state.rules.fields[name];
    const text = input.value.trim();
    if (!text) {
      if (rule.needs.includes(name)) problems[name] = t("field_required");
      continue;
    }
    if (schema.type === "integer" || schema.type === "number") {
      const number = Number(text);
      if (!Number.isFinite(number) || (schema.type === "integer" && !Number.isInteger(number))) {
        problems[name] = t("field_number");
      } else if (schema.exclusiveMinimum !== undefined && number <= schema.exclusiveMinimum) {
        problems[name] = `${t("field_min")} ${schema.exclusiveMinimum}`;
      } else if (schema.maximum !== undefined && number > schema.maximum) {
        problems[name] = `${t("field_max")} ${schema.maximum}`;
      } else {
        values[name] = number;
      }
    } else if (schema.maxLength && text.length > schema.maxLength) {
      problems[name] = `${t("field_long")} ${schema.maxLength}`;
    } else {
      values[name] = text;
    }
  }
  if (rule.exactly_one.length && rule.exactly_one.filter((n) => n in values).length !== 1) {
    for (const name of rule.exactly_one) problems[name] = t("exactly_one");
  }
  return { values, problems };
}

/** The server's seedling-count rule (rules.json "quantities") on the lot as last seen, moved on
 * by the events still waiting in the queue; a message, or null when the quantity fits. */
async function quantityProblem(eventType, quantity) {
  const limit = state.rules.quantities?.[eventType];
  const lot = state.item?.trace?.item;
  if (!limit || quantity == null || !lot || lot[limit.of] == null) return null;
  const counts = { ...lot };
  for (const record of await queueAll()) {
    const queued = state.rules.quantities[record.event.event_type];
    if (record.event.code !== state.item.code || record.state !== "pending" || !queued) continue;
    counts[queued.less] = (counts[queued.less] || 0) + (record.event.quantity || 0);
  }
  const left = counts[limit.of] - (counts[limit.less] || 0);
  return quantity > left ? problemText({ rule: limit.rule, message: `${t("only_left")} ${left}` }) : null;
}

function position() {
  return new Promise((resolve) => {
    if (!navigator.geolocation) return resolve(null);
    navigator.geolocation.getCurrentPosition(
      (p) => resolve([p.coords.longitude, p.coords.latitude]),
      () => resolve(null),
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 },
    );
  });
}

async function record(submit) {
  submit.preventDefault();
  if (state.eventType === "tree_check") return recordCheck();
  const rule = state.rules.item_types[state.item.item_type].events[state.eventType];
  const { values, problems } = readFields(rule);
  for (const input of $("event-fields").querySelectorAll("input, select")) {
    $(`f-${input.name}-problem`).textContent = problems[input.name] || "";
    input.setAttribute("aria-invalid", String(input.name in problems));
  }
  const over = await quantityProblem(state.eventType, values.quantity);
  if (over) {
    $("f-quantity-problem").textContent = over;
    $("f-quantity").setAttribute("aria-invalid", "true");
    return;
  }
  if (Object.keys(problems).length) return;
  const where = await position();
  if (!where) {
    say(t("no_gps"));
    return;
  }
  const clientEventId = crypto.randomUUID();
  const event = {
    device_id: deviceId(),
    client_event_id: clientEventId,
    code: state.item.code,
    event_type: state.eventType,
    occurred_at: new Date().toISOString(),
    location: { type: "Point", coordinates: where },
    ...values,
  };
  await queuePut([{ client_event_id: clientEventId, seq: Date.now() * 1000 + (seqCounter++ % 1000), event, state: "pending", problem: null }]);
  if (state.editing) {
    await queueDelete([state.editing]); // the refused original was never stored by the server
    state.editing = null;
  }
  const done = `${t("queued")}: ${t(`ev_${state.eventType}`)} · ${state.item.code}`;
  await renderItem();
  await renderQueue();
  say(done, "info"); // once the queue shows it
  sync();
}
let seqCounter = 0;

/** Queue events as recorded (each with its client event id and device id) and send them. */
async function enqueue(events) {
  const now = Date.now() * 1000;
  await queuePut(events.map((event, i) => ({ client_event_id: event.client_event_id, seq: now + i, event, state: "pending", problem: null })));
  await renderQueue();
  return sync();
}

/* ---- sending ------------------------------------------------------------------------------- */

async function renderQueue() {
  const records = await queueAll();
  const checks = await checksAll();
  $("queue-count").textContent = String(records.length + checks.length);
  // Every refused event, and the oldest pending ones: thousands of list rows help nobody.
  const pending = records.filter((r) => r.state === "pending");
  const shown = [...records.filter((r) => r.state !== "pending"), ...pending.slice(0, SHOWN_PENDING)];
  const more = pending.length > SHOWN_PENDING ? [el("li", `… +${pending.length - SHOWN_PENDING} ${t("pending")}`)] : [];
  $("queue-list").replaceChildren(
    ...shown.map((r) => {
      const li = el("li");
      li.className = r.state;
      li.dataset.id = r.client_event_id;
      li.append(el("div", `${r.event.code} · ${t(`ev_${r.event.event_type}`)} · ${t(r.state)}`));
      if (r.problem) {
        li.append(Object.assign(el("div", problemText(r.problem)), { className: "problem" }));
        const actions = Object.assign(el("div"), { className: "actions" });
        const drop = Object.assign(el("button", t("drop")), { type: "button", className: "drop" });
        drop.addEventListener("click", async () => {
          await queueDelete([r.client_event_id]);
          await renderQueue();
        });
        const edit = Object.assign(el("button", t("edit")), { type: "button", className: "edit" });
        edit.addEventListener("click", () => editRefused(r));
        actions.append(drop, edit);
        li.append(actions);
      }
      return li;
    }),
    ...more,
    ...checks.map((r) => {
      const li = el("li");
      li.className = `${r.state} check`;
      li.dataset.id = r.client_event_id;
      const photos = r.photos.length ? ` · ${r.photos.length} ${t("photos_pending")}` : "";
      li.append(el("div", `${r.code} · ${t(r.kind === "damage" ? "ev_damage" : "ev_tree_check")}${photos} · ${t(r.state)}`));
      if (r.problem) {
        li.append(Object.assign(el("div", problemText(r.problem)), { className: "problem" }));
        const actions = Object.assign(el("div"), { className: "actions" });
        const drop = Object.assign(el("button", t("drop")), { type: "button", className: "drop" });
        drop.addEventListener("click", async () => {
          await dropCheck(r.client_event_id);
          await renderQueue();
        });
        actions.append(drop);
        const edit = Object.assign(el("button", t("edit")), { type: "button", className: "edit" });
        edit.addEventListener("click", () => (r.kind === "damage" ? editRefusedDamage(r) : editRefusedCheck(r)));
        actions.append(edit);
        li.append(actions);
      }
      return li;
    }),
  );
}

async function editRefused(record) {
  $("code").value = record.event.code;
  onCodeInput();
  await lookUp(record.event.code, record.client_event_id);
  const events = state.rules.item_types[state.item.item_type].events;
  const name = record.event.event_type in events ? record.event.event_type : null;
  if (name && $("event-types").querySelector(`[data-event="${name}"]`)) chooseEvent(name, record.event);
  $("item").scrollIntoView();
}

/** Open a refused tree check's form with what it held, to correct and queue again; the
 * original stays in the queue until the corrected one replaces it. */
async function editRefusedCheck(record) {
  const kept = await store("items", "readonly", (s) => s.get(record.code));
  const trace = kept?.item?.tree_code === record.inspection.tree_code ? kept
    : { code: record.code, item_type: "tree", item: { tree_code: record.inspection.tree_code }, origin: null, events: [] };
  state.item = { code: record.code, item_type: "tree", trace, offline: !navigator.onLine, picked: true };
  await renderItem();
  state.editing = record.client_event_id;
  chooseEvent("tree_check", record.inspection);
  if (record.photos.length) {
    $("f-photos-problem").textContent = "";
    $("f-photos").insertAdjacentElement("afterend", Object.assign(el("p", t("photos_kept", { count: record.photos.length })), { className: "hint" }));
  }
  $("item").scrollIntoView();
}

function sessionExpired() {
  localStorage.removeItem(TOKEN_KEY);
  say(t("session_expired"));
  show();
}

function retryLater() {
  clearTimeout(state.retryTimer);
  const wait = BACKOFF_MS[Math.min(state.failures, BACKOFF_MS.length - 1)];
  state.failures += 1;
  state.retryTimer = setTimeout(sync, wait * (0.75 + Math.random() / 2));
}

/** Send the pending events in batches until none is left, one sender at a time (Web Locks). */
async function sync() {
  if (!token()) return;
  const run = () => sendAll().then(sendChecks).finally(renderQueue);
  if (navigator.locks) return navigator.locks.request("smarttrees-field-sync", { ifAvailable: true }, (lock) => lock && run());
  if (state.syncing) return;
  state.syncing = true;
  try {
    await run();
  } finally {
    state.syncing = false;
  }
}

/* ---- tree checks: care inspections with photos, queued like the events ---------------------- */

/** The tree check's rules (care.json, from the server's own models), kept for offline use. */
async function loadCare() {
  try {
    const response = await fetch("care.json");
    if (!response.ok) throw new Error(String(response.status));
    const care = await response.json();
    localStorage.setItem(CARE_KEY, JSON.stringify(care));
    return care;
  } catch {
    return JSON.parse(localStorage.getItem(CARE_KEY) || "null");
  }
}

function choiceInput(name, options, value, required) {
  const wrap = el("div");
  const label = el("label", t(`f_${name}`) + (required ? ` (${t("required")})` : ""));
  label.htmlFor = `f-${name}`;
  const input = el("select");
  input.append(el("option", ""), ...options.map((v) => Object.assign(el("option", t(v)), { value: v })));
  input.id = `f-${name}`;
  input.name = name;
  if (value != null) input.value = String(value);
  wrap.append(label, input, Object.assign(el("p"), { className: "status bad", id: `f-${name}-problem` }));
  return wrap;
}

function numberInput(name, value) {
  const wrap = el("div");
  const label = el("label", t(`f_${name}`));
  label.htmlFor = `f-${name}`;
  const input = Object.assign(el("input"), { type: "number", inputMode: "decimal", step: "any", id: `f-${name}`, name });
  if (value != null) input.value = String(value);
  wrap.append(label, input, Object.assign(el("p"), { className: "status bad", id: `f-${name}-problem` }));
  return wrap;
}

function chooseCheck(values) {
  const care = state.care;
  const defects = Object.assign(el("fieldset"), { id: "f-defects" });
  defects.append(el("legend", t("f_defects")));
  for (const [code, label] of Object.entries(care.defects)) {
    const box = Object.assign(el("input"), { type: "checkbox", value: code, name: "defect" });
    box.checked = (values.defects || []).includes(code);
    const line = el("label");
    line.append(box, ` ${label[state.lang] || label.en}`);
    defects.append(line);
  }
  const photos = el("div");
  const label = el("label", t("f_photos"));
  label.htmlFor = "f-photos";
  const input = Object.assign(el("input"), { type: "file", accept: "image/jpeg,image/png,image/webp", multiple: true, id: "f-photos", name: "photos" });
  input.setAttribute("capture", "environment");
  photos.append(label, input, Object.assign(el("p"), { className: "status bad", id: "f-photos-problem" }));
  const note = fieldInput("note", false, values.note);
  $("event-fields").replaceChildren(
    choiceInput("condition", care.fields.condition.enum, values.condition, false),
    numberInput("dbh_cm", values.dbh_cm),
    numberInput("height_m", values.height_m),
    defects,
    choiceInput("likelihood_failure", care.traq.likelihood_failure, values.likelihood_failure, true),
    choiceInput("likelihood_impact", care.traq.likelihood_impact, values.likelihood_impact, true),
    choiceInput("consequences", care.traq.consequences, values.consequences, true),
    photos,
    note,
  );
  $("event-form").hidden = false;
}

/** A number field checked by its JSON schema from care.json; [value|null, problem|null]. */
function checkNumber(text, schema) {
  if (!text) return [null, null];
  const number = Number(text);
  if (!Number.isFinite(number)) return [null, t("field_number")];
  if (schema.exclusiveMinimum !== undefined && number <= schema.exclusiveMinimum) return [null, `${t("field_min")} ${schema.exclusiveMinimum}`];
  if (schema.maximum !== undefined && number > schema.maximum) return [null, `${t("field_max")} ${schema.maximum}`];
  return [number, null];
}

/** The tree check from the form, checked by the server's rules; {values, files, problems}. */
function readCheck() {
  const care = state.care;
  const values = {};
  const problems = {};
  const text = (name) => $(`f-${name}`).value.trim();
  if (text("condition")) values.condition = text("condition");
  for (const name of ["dbh_cm", "height_m"]) {
    const [number, problem] = checkNumber(text(name), care.fields[name]);
    if (problem) problems[name] = problem;
    else if (number !== null) values[name] = number;
  }
  values.defects = [...$("f-defects").querySelectorAll("input:checked")].map((b) => b.value);
  for (const name of ["likelihood_failure", "likelihood_impact", "consequences"]) {
    if (!text(name)) problems[name] = t("field_required");
    else values[name] = text(name);
  }
  if (text("note")) {
    if (text("note").length > care.fields.note.maxLength) problems.note = `${t("field_long")} ${care.fields.note.maxLength}`;
    else values.note = text("note");
  }
  const files = [...$("f-photos").files];
  if (files.length > care.max_photos) problems.photos = t("too_many_photos");
  else if (files.some((f) => f.size > care.photo_mb * 1024 * 1024)) problems.photos = `${t("photo_too_big")} ${care.photo_mb}`;
  return { values, files, problems };
}

function localDate() {
  const now = new Date();
  return new Date(now.getTime() - now.getTimezoneOffset() * 60000).toISOString().slice(0, 10);
}

async function recordCheck() {
  const { values, files, problems } = readCheck();
  for (const name of ["condition", "dbh_cm", "height_m", "likelihood_failure", "likelihood_impact", "consequences", "photos", "note"]) {
    $(`f-${name}-problem`).textContent = problems[name] || "";
    $(`f-${name}`).setAttribute("aria-invalid", String(name in problems));
  }
  if (Object.keys(problems).length) return;
  const treeCode = state.item.trace?.item?.tree_code;
  if (!treeCode) {
    say(t("check_needs_trace"));
    return;
  }
  const clientEventId = crypto.randomUUID();
  // A refused check edited: its photos stay with it unless new ones are chosen.
  const original = state.editing ? (await checksAll()).find((r) => r.client_event_id === state.editing) : null;
  const keepPhotos = Boolean(original) && files.length === 0;
  const photos = files.map((file) => ({ id: crypto.randomUUID(), blob: file, type: file.type, server_id: null }));
  await photosPut(photos); // the blobs first: a check never names a photo the phone lost
  const today = localDate();
  const inspection = {
    tree_code: treeCode,
    inspected_on: original && original.inspection.inspected_on < today ? original.inspection.inspected_on : today,
    inspector: localStorage.getItem(USER_KEY) || "field",
    device_id: deviceId(),
    client_event_id: clientEventId,
    ...values,
  };
  const photoIds = keepPhotos ? original.photos : photos.map((p) => p.id);
  await checksPut([{ client_event_id: clientEventId, seq: Date.now() * 1000 + (seqCounter++ % 1000), code: state.item.code, inspection, photos: photoIds, state: "pending", problem: null }]);
  if (original) {
    // The refused original was never stored by the server: it goes (its photos too, if replaced).
    if (keepPhotos) await checksDelete([original.client_event_id]);
    else await dropCheck(original.client_event_id);
  }
  state.editing = null;
  say(`${t("queued")}: ${t("ev_tree_check")} · ${state.item.code}`, "info");
  await renderItem();
  await renderQueue();
  sync();
}

async function dropCheck(clientEventId) {
  const record = (await checksAll()).find((r) => r.client_event_id === clientEventId);
  if (!record) return;
  await photosDelete(record.photos);
  await checksDelete([clientEventId]);
}

/** Upload a check's photos not yet on the server; their server ids, or {refused} or {retry}. */
async function uploadPhotos(record) {
  const ids = [];
  for (const localId of record.photos) {
    const photo = await photoGet(localId);
    if (!photo) continue;
    if (photo.server_id) {
      ids.push(photo.server_id);
      continue;
    }
    let response;
    try {
      response = await fetch(`${API}photos`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token()}`, "Content-Type": photo.type || "image/jpeg" },
        body: photo.blob,
      });
    } catch {
      return { retry: true }; // cut mid-upload: sent again, the server stores one copy
    }
    if (response.status === 401 || response.status === 403) return { expired: true };
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      if ([413, 415, 422].includes(response.status)) return { refused: refusal(response, body) };
      return { retry: true };
    }
    photo.server_id = (await response.json()).id;
    await photosPut([photo]);
    ids.push(photo.server_id);
  }
  return { ids };
}

/** POST one queued record; "ok", "refused" (kept with the server's message) or "stop" (later). */
async function sendOne(record, url, body) {
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch {
    retryLater(); // resent as is: the server keeps one per (device, client event id)
    return "stop";
  }
  if (response.ok) {
    state.failures = 0;
    await dropCheck(record.client_event_id);
    return "ok";
  }
  if (response.status === 401 || response.status === 403) {
    sessionExpired();
    return "stop";
  }
  const answer = await response.json().catch(() => null);
  if ([404, 409, 422].includes(response.status) && answer?.description) {
    await checksPut([{ ...record, state: "conflict", problem: refusal(response, answer) }]);
    return "refused";
  }
  retryLater();
  return "stop";
}

/** Send the pending tree checks, one at a time: photos first, then the inspection naming them. */
async function sendChecks() {
  for (const record of (await checksAll()).filter((r) => r.state === "pending")) {
    if (record.kind === "damage") {
      const done = await sendOne(record, `${API}care/storms/${record.storm_id}/damage`, record.record);
      if (done === "stop") return;
      continue;
    }
    const uploaded = await uploadPhotos(record);
    if (uploaded.expired) return sessionExpired();
    if (uploaded.retry) return retryLater();
    if (uploaded.refused) {
      await checksPut([{ ...record, state: "conflict", problem: uploaded.refused }]);
      continue;
    }
    let response;
    try {
      response = await fetch(`${API}care/inspections`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json" },
        body: JSON.stringify({ ...record.inspection, photos: uploaded.ids }),
      });
    } catch {
      return retryLater(); // resent as is: the server keeps one per (device, client event id)
    }
    if (response.ok) {
      state.failures = 0;
      await dropCheck(record.client_event_id);
      continue;
    }
    if (response.status === 401 || response.status === 403) return sessionExpired();
    const body = await response.json().catch(() => null);
    if ([404, 409, 422].includes(response.status) && body?.description) {
      await checksPut([{ ...record, state: "conflict", problem: refusal(response, body) }]);
      continue;
    }
    return retryLater();
  }
}

/* ---- storm damage: records under a storm, queued like the rest --------------------------- */

const STORMS_KEY = "smarttrees.field.storms";

/** The storms to record damage under (GET /api/care/storms), kept for offline use. */
async function loadStorms() {
  try {
    const response = await fetch(`${API}care/storms`, { headers: { Authorization: `Bearer ${token()}` } });
    if (response.ok) localStorage.setItem(STORMS_KEY, JSON.stringify((await response.json()).storms));
  } catch {
    // offline: the copy kept last time serves
  }
  return JSON.parse(localStorage.getItem(STORMS_KEY) || "[]");
}

async function openDamage() {
  if (!state.care) return;
  const storms = await loadStorms();
  const select = $("d-storm");
  select.replaceChildren(...storms.map((s) => Object.assign(el("option", `${s.name} (${s.started_on})`), { value: String(s.id) })));
  $("d-storm-problem").textContent = storms.length ? "" : t("no_storm");
  const kinds = $("d-kind");
  kinds.replaceChildren(el("legend", t("d_kind")), ...state.care.damage.kinds.map((kind) => {
    const line = el("label");
    line.append(Object.assign(el("input"), { type: "radio", name: "damage", value: kind }), ` ${t(kind)}`);
    return line;
  }));
  const tree = state.item?.item_type === "tree" ? state.item.trace?.item?.tree_code : null;
  $("d-tree").value = tree || "";
  $("damage").hidden = false;
  $("damage").scrollIntoView();
}

/** Open a refused damage record's form with what it held, to correct and queue again. */
async function editRefusedDamage(record) {
  await openDamage();
  state.editingDamage = record.client_event_id;
  $("d-storm").value = String(record.storm_id);
  const kind = $("d-kind").querySelector(`input[value="${record.record.damage}"]`);
  if (kind) kind.checked = true;
  $("d-road").checked = Boolean(record.record.blocks_road);
  $("d-hazard").checked = Boolean(record.record.hazard_to_people);
  $("d-tree").value = record.record.tree_code || "";
  $("d-note").value = record.record.note || "";
}

async function recordDamage(submit) {
  submit.preventDefault();
  const problems = {};
  const storm = $("d-storm").value;
  if (!storm) problems.storm = t("no_storm");
  const kind = $("d-kind").querySelector("input:checked")?.value;
  if (!kind) problems.kind = t("field_required");
  const note = $("d-note").value.trim();
  if (note.length > state.care.damage.note_max_length) problems.note = `${t("field_long")} ${state.care.damage.note_max_length}`;
  for (const name of ["storm", "kind", "note"]) $(`d-${name}-problem`).textContent = problems[name] || "";
  if (Object.keys(problems).length) return;
  // A refused record corrected keeps where and when the damage was seen.
  const original = state.editingDamage ? (await checksAll()).find((r) => r.client_event_id === state.editingDamage) : null;
  const where = original ? original.record.location?.coordinates : await position();
  const treeCode = $("d-tree").value.trim();
  if (!where && !treeCode) {
    say(t("no_gps"));
    return;
  }
  const clientEventId = crypto.randomUUID();
  const record = {
    device_id: deviceId(),
    client_event_id: clientEventId,
    damage: kind,
    blocks_road: $("d-road").checked,
    hazard_to_people: $("d-hazard").checked,
    observed_at: original ? original.record.observed_at : new Date().toISOString(),
    ...(where ? { location: { type: "Point", coordinates: where } } : {}),
    ...(treeCode ? { tree_code: treeCode } : {}),
    ...(note ? { note } : {}),
  };
  await checksPut([{ client_event_id: clientEventId, seq: Date.now() * 1000 + (seqCounter++ % 1000), kind: "damage", storm_id: Number(storm), code: treeCode || t(kind), record, photos: [], state: "pending", problem: null }]);
  if (original) await checksDelete([original.client_event_id]); // never stored by the server
  state.editingDamage = null;
  say(`${t("queued")}: ${t("ev_damage")} · ${t(kind)}`, "info");
  $("damage-form").reset();
  $("damage").hidden = true;
  await renderQueue();
  sync();
}

async function sendAll() {
  let size = Math.min(BATCH, state.rules.max_batch);
  for (;;) {
    const pending = (await queueAll()).filter((r) => r.state === "pending");
    if (!pending.length) return;
    const batch = pending.slice(0, size);
    let response;
    try {
      response = await fetch(`${API}scans`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json" },
        body: JSON.stringify({ events: batch.map((r) => r.event) }),
      });
    } catch {
      return retryLater(); // no connection, or cut during the upload: resent as is, recorded once
    }
    if (response.ok) {
      state.failures = 0;
      await queueDelete(batch.map((r) => r.client_event_id));
      continue;
    }
    if (response.status === 401 || response.status === 403) return sessionExpired();
    if (response.status === 413 && size > 1) {
      size = Math.max(1, Math.floor(size / 2));
      continue;
    }
    const body = await response.json().catch(() => null);
    const problems = body?.problems;
    if ((response.status === 409 || response.status === 422 || response.status === 404) && Array.isArray(problems) && problems.length) {
      // All or nothing: nothing of the batch was stored. Keep the refused events aside, with
      // the server's rule and message; the others go again at once.
      const refused = problems
        .filter((p) => Number.isInteger(p.index) && batch[p.index])
        .map((p) => ({ ...batch[p.index], state: "conflict", problem: { rule: p.rule, message: p.message, status: p.status ?? response.status } }));
      if (!refused.length) return retryLater();
      await queuePut(refused);
      continue;
    }
    return retryLater(); // busy, unavailable, or an answer we do not understand: later
  }
}

/* ---- the area map: the server's vector tiles, kept on the phone for offline use -------------
 *
 * The map reads its tiles through the "fieldtiles" protocol: with signal from the server's tile
 * routes (falling back to the copy kept), without from the copy kept in the Cache API
 * (TILES_CACHE, which the service worker leaves alone). What to keep is the server's plan
 * (/field/tiles/plan: the tiles of an area and zoom range where something is, their count and
 * size, refused above the server's cap); a download already partly done goes on where it
 * stopped (a tile kept is not fetched again). */

const TILES_CACHE = "smarttrees-field-tiles";
const AREA_KEY = "smarttrees.field.area";
const AREA_ZOOMS = [12, 16]; // the default range: streets to single trees
const DOWNLOADS_AT_ONCE = 4;
const TREE_COLOURS = ["match", ["get", "category"], "urban", "#1f78b4", "scattered", "#ff7f00", "plantation", "#33a02c", "#999999"];

const area = { map: null, plan: null, mapProtocol: false };

function tileUrl(collection) {
  return `fieldtiles://collections/${collection}/tiles/WebMercatorQuad/{z}/{y}/{x}`;
}

/** The absolute URL of a tile path the plan or the map names ("collections/…"). */
function tileHref(path) {
  return new URL(`../${path}`, location.href).href;
}

async function keptTile(href) {
  const hit = await (await caches.open(TILES_CACHE)).match(href);
  return hit ? hit.arrayBuffer() : null;
}

/** The map's tile loader: network first with signal, the kept copy otherwise; an address with
 * neither is drawn empty (the plan leaves out the tiles known to be empty). */
async function loadTile(params, abort) {
  const href = tileHref(params.url.slice("fieldtiles://".length));
  if (navigator.onLine) {
    try {
      const response = await fetch(href, { signal: abort.signal });
      if (response.ok) return { data: await response.arrayBuffer() };
    } catch (error) {
      if (abort.signal.aborted) throw error;
    }
  }
  return { data: (await keptTile(href)) || new ArrayBuffer(0) };
}

function areaStyle() {
  return {
    version: 8,
    sources: {
      trees: { type: "vector", tiles: [tileUrl("trees")], minzoom: 0, maxzoom: 16 },
      stands: { type: "vector", tiles: [tileUrl("stands")], minzoom: 0, maxzoom: 15 },
      communes: { type: "vector", tiles: [tileUrl("communes")], minzoom: 0, maxzoom: 14 },
      here: { type: "geojson", data: { type: "FeatureCollection", features: [] } },
    },
    layers: [
      { id: "bg", type: "background", paint: { "background-color": "#eef1ea" } },
      { id: "communes-line", type: "line", source: "communes", "source-layer": "communes", paint: { "line-color": "#6b5b95", "line-width": 1.5, "line-dasharray": [3, 2] } },
      { id: "stands-fill", type: "fill", source: "stands", "source-layer": "stands", paint: { "fill-color": "#7fbf7b", "fill-opacity": 0.45 } },
      { id: "stands-line", type: "line", source: "stands", "source-layer": "stands", paint: { "line-color": "#2d7a35", "line-width": 1 } },
      { id: "tree-cells", type: "circle", source: "trees", "source-layer": "trees_grid", paint: { "circle-color": "#33a02c", "circle-opacity": 0.7, "circle-radius": 4 } },
      {
        id: "trees", type: "circle", source: "trees", "source-layer": "trees",
        paint: {
          "circle-color": TREE_COLOURS,
          // Large enough to tap with a thumb at street zoom.
          "circle-radius": ["interpolate", ["linear"], ["zoom"], 13, 3, 16, 7, 19, 12],
          "circle-stroke-color": "#ffffff", "circle-stroke-width": 1.5,
        },
      },
      { id: "here", type: "circle", source: "here", paint: { "circle-radius": 8, "circle-color": "#1565c0", "circle-stroke-color": "#fff", "circle-stroke-width": 3 } },
    ],
  };
}

function zoomChoices() {
  const top = 16;
  for (const [id, value] of [["area-minzoom", AREA_ZOOMS[0]], ["area-maxzoom", AREA_ZOOMS[1]]]) {
    const select = $(id);
    if (select.options.length) continue;
    for (let z = 8; z <= top; z += 1) select.append(new Option(String(z), String(z), false, z === value));
  }
}

function formatSize(bytes) {
  const locale = state.lang === "vi" ? "vi-VN" : state.lang;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toLocaleString(locale, { maximumFractionDigits: 0 })} KB`;
  return `${(bytes / 1024 / 1024).toLocaleString(locale, { maximumFractionDigits: 1 })} MB`;
}

function showSavedArea() {
  const saved = JSON.parse(localStorage.getItem(AREA_KEY) || "null");
  $("area-saved").textContent = saved ? t("area_saved", { tiles: saved.tiles, size: formatSize(saved.bytes), date: saved.date }) : "";
}

async function openArea() {
  $("area").hidden = false;
  zoomChoices();
  showSavedArea();
  if (!window.maplibregl) return say(t("area_no_map"));
  const saved = JSON.parse(localStorage.getItem(AREA_KEY) || "null");
  const where = area.map ? null : await position();
  if (!area.map) {
    if (!area.mapProtocol) {
      window.maplibregl.addProtocol("fieldtiles", loadTile);
      area.mapProtocol = true;
    }
    const view = where ? { center: where, zoom: 15 } : saved ? { bounds: [saved.bbox.slice(0, 2), saved.bbox.slice(2)] } : { center: [105.8, 21.6], zoom: 12 };
    try {
      area.map = new window.maplibregl.Map({ container: "area-map", style: areaStyle(), attributionControl: false, maxZoom: 19, ...view });
    } catch (error) {
      console.warn("no map", error);
      return say(t("area_no_map"));
    }
    area.map.on("click", "trees", (e) => e.features.length && openTree(e.features[0]));
    area.map.on("mouseenter", "trees", () => { area.map.getCanvas().style.cursor = "pointer"; });
    if (where) area.map.on("load", () => area.map.getSource("here").setData({ type: "Point", coordinates: where }));
  }
  $("area").scrollIntoView();
  area.map.resize();
}

/** The area the user chose: the map's view, or the team's area when it has one. */
function chosenBbox() {
  const team = JSON.parse(localStorage.getItem(TEAM_KEY) || "null");
  if ($("area-extent").value === "team") {
    if (team?.bbox) return team.bbox;
    say(t("area_no_team"));
  }
  const b = area.map.getBounds();
  return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()];
}

async function planArea() {
  if (!area.map) return;
  $("area-download").hidden = true;
  area.plan = null;
  const bbox = chosenBbox().map((v) => v.toFixed(5)).join(",");
  const query = new URLSearchParams({ bbox, minzoom: $("area-minzoom").value, maxzoom: $("area-maxzoom").value });
  let response;
  try {
    response = await fetch(`tiles/plan?${query}`, { headers: { Authorization: `Bearer ${token()}` } });
  } catch {
    $("area-status").textContent = t("area_needs_online");
    $("area-status").className = "status bad";
    return;
  }
  if (response.status === 401 || response.status === 403) return sessionExpired();
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    $("area-status").textContent = body?.description || String(response.status); // the cap, and what to change
    $("area-status").className = "status bad";
    return;
  }
  area.plan = body;
  $("area-status").textContent = t("area_planned", { tiles: body.tiles, size: formatSize(body.bytes) });
  $("area-status").className = "status ok";
  $("area-download").hidden = body.tiles === 0;
}

/** Fetch the plan's tiles into TILES_CACHE, a few at a time, skipping those kept already. */
async function downloadArea() {
  const plan = area.plan;
  if (!plan) return;
  if (navigator.storage?.persist) navigator.storage.persist().catch(() => {});
  const cache = await caches.open(TILES_CACHE);
  const bar = $("area-progress");
  bar.max = plan.urls.length;
  bar.value = 0;
  bar.hidden = false;
  $("area-download").disabled = true;
  let done = 0;
  let bytes = 0;
  let cut = false;
  const todo = [...plan.urls];
  const step = () => {
    bar.value = done;
    $("area-status").textContent = t("area_progress", { done, total: plan.urls.length });
    $("area-status").className = "status wait";
  };
  async function worker() {
    while (todo.length && !cut) {
      const href = tileHref(todo.shift());
      const kept = await cache.match(href);
      if (kept) {
        bytes += (await kept.clone().arrayBuffer()).byteLength;
      } else {
        try {
          const response = await fetch(href);
          if (!response.ok) throw new Error(String(response.status));
          const body = await response.clone().arrayBuffer();
          await cache.put(href, response);
          bytes += body.byteLength;
        } catch {
          cut = true; // offline or the server busy: what is kept stays, the next press goes on
          return;
        }
      }
      done += 1;
      step();
    }
  }
  step();
  await Promise.all(Array.from({ length: DOWNLOADS_AT_ONCE }, worker));
  $("area-download").disabled = false;
  if (cut) {
    $("area-status").textContent = t("area_cut", { done, total: plan.urls.length });
    $("area-status").className = "status bad";
    return;
  }
  bar.hidden = true;
  localStorage.setItem(AREA_KEY, JSON.stringify({ bbox: plan.bbox, minzoom: plan.minzoom, maxzoom: plan.maxzoom, tiles: done, bytes, date: localDate() }));
  $("area-status").textContent = "";
  showSavedArea();
}

/** A tree tapped on the map: its tree check, from what its tile carries (no lookup needed; the
 * tile's feature id is the tree's id, which its tag's number is). */
async function openTree(feature) {
  const { properties } = feature;
  const prefix = state.rules.item_types.tree.prefix;
  const digits = String(feature.id ?? properties.id).padStart(state.rules.code.number_width, "0");
  const code = `${prefix}-${digits}-${checkCharacter(prefix + digits, state.rules.code.check_alphabet)}`;
  const item = { tree_code: properties.tree_code, species: properties.species_vi || properties.species_name, category: properties.category };
  state.editing = null;
  state.item = { code, item_type: "tree", trace: { code, item_type: "tree", item, origin: null, events: [] }, offline: !navigator.onLine, picked: true };
  await renderItem();
  if (state.care) chooseEvent("tree_check"); // the check's rules, kept since the first start
  $("item").scrollIntoView();
}

/* ---- start --------------------------------------------------------------------------------- */

/** The languages there are catalogues for, as the server listed them in the page. */
const LANGUAGES = window.SMARTTREES_FIELD?.languages?.length ? window.SMARTTREES_FIELD.languages : [{ code: "vi", name: "Tiếng Việt" }];

/** Load the catalogue of the language chosen (the one loader of the map and the dashboard):
 * the one picked before, else the phone's, else Vietnamese. The service worker keeps the
 * catalogues, so this works offline too. */
async function loadLanguage() {
  try {
    state.i18n = await window.SmartTreesI18n.load("static", LANGUAGES);
  } catch (error) {
    console.warn("no catalogue", error); // the keys show: better than no page
    state.i18n = null;
  }
  state.lang = state.i18n?.lang || "vi";
}

/** The next language in the list: the header's button switches to it, without a reload. */
function nextLanguage() {
  const codes = LANGUAGES.map((l) => l.code);
  return codes[(codes.indexOf(state.lang) + 1) % codes.length];
}

async function switchLanguage() {
  window.SmartTreesI18n.keep(nextLanguage());
  await loadLanguage();
  translate();
}

function translate() {
  if (state.i18n) state.i18n.apply();
  else document.documentElement.lang = state.lang;
  $("lang").textContent = nextLanguage().toUpperCase();
  showTeam();
  $("camera-btn").textContent = camera.stream ? t("camera_stop") : t("camera");
  showNetwork();
  if (state.rules) {
    onCodeInput();
    renderQueue();
    if (state.item) renderItem();
  }
}

function showNetwork() {
  const online = navigator.onLine;
  $("net").textContent = online ? t("online") : t("offline");
  $("net").className = `badge ${online ? "" : "offline"}`;
}

async function loadRules() {
  try {
    const response = await fetch("rules.json");
    if (!response.ok) throw new Error(String(response.status));
    const rules = await response.json();
    localStorage.setItem(RULES_KEY, JSON.stringify(rules));
    return rules;
  } catch {
    return JSON.parse(localStorage.getItem(RULES_KEY) || "null");
  }
}

async function start() {
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("sw.js").catch((e) => console.warn(e));
  await loadLanguage();
  state.rules = await loadRules();
  state.care = await loadCare();
  loadReference();
  if (token()) loadTeam().then(loadStands);
  $("device").textContent = deviceId();
  $("lang").addEventListener("click", switchLanguage);
  $("signin-btn").addEventListener("click", signIn);
  $("signout").addEventListener("click", signOut);
  $("code").addEventListener("input", onCodeInput);
  $("code").addEventListener("keydown", (e) => e.key === "Enter" && !$("lookup").disabled && lookUp($("code").value));
  $("lookup").addEventListener("click", () => lookUp($("code").value));
  $("camera-btn").addEventListener("click", startCamera);
  $("event-form").addEventListener("submit", record);
  $("damage-btn").addEventListener("click", openDamage);
  $("damage-form").addEventListener("submit", recordDamage);
  $("area-btn").addEventListener("click", openArea);
  $("area-plan").addEventListener("click", planArea);
  $("area-download").addEventListener("click", downloadArea);
  $("sync").addEventListener("click", () => {
    state.failures = 0;
    sync();
  });
  window.addEventListener("online", () => {
    showNetwork();
    state.failures = 0;
    sync();
  });
  window.addEventListener("offline", showNetwork);
  setInterval(sync, 30000);
  translate();
  show();
  await renderQueue();
  window.smarttreesField = { ready: true, checkCharacter, checkCode, codeFromSymbol, sync, queueAll, checksAll, checksPut, enqueue, deviceId, area, loadTeam };
  sync();
}

start();
