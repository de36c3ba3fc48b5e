// SmartTrees web map: MapLibre GL JS over the server's OGC API vector tiles (or a PMTiles archive).
// Plain script, no build step. Configuration comes from the page (window.SMARTTREES).
"use strict";

SmartTreesI18n.load(`${window.SMARTTREES.base}/map/static`, window.SMARTTREES.languages).then((i18n) => {
  const { t } = i18n;
  const config = window.SMARTTREES;
  const base = config.base;
  i18n.apply();
  i18n.picker(document.getElementById("lang"));
  document.title = t("map.title");
  const tilesUrl = (collection) =>
    `${base}/collections/${collection}/tiles/WebMercatorQuad/{z}/{y}/{x}`;
  // With a PMTiles archive (smarttrees tiles export) the vector tiles come from it, by HTTP range
  // requests to wherever it is hosted, not from the server's tile routes. One source then holds
  // the trees, stands and communes layers (each archive tile carries all three).
  const archive = config.tilesArchive;
  if (archive) {
    maplibregl.addProtocol("pmtiles", new pmtiles.Protocol().tile);
  }
  const sourceOf = (collection) => (archive ? "archive" : collection);

  const COLOURS = {
    category: { urban: "#1f78b4", scattered: "#ff7f00", plantation: "#33a02c" },
    condition: {
      good: "#1a9641", fair: "#a6d96a", poor: "#fdae61", dead: "#d7191c", removed: "#7b7b7b",
    },
  };
  let colourBy = "category";
  // Tree care: ISA TRAQ risk classes (the due list's layer).
  const RISK_COLOURS = { low: "#1a9641", moderate: "#fdae61", high: "#e66101", extreme: "#b2182b" };
  // Chain-of-custody scans, by the step they record: where logs and seedlings went.
  const CUSTODY_COLOURS = {
    felled: "#8c510a", at_landing: "#d8b365", loaded: "#e08214", received: "#b2182b",
    processed: "#762a83", sold: "#2166ac", dispatched: "#5aae61", planted: "#1b7837",
    certified: "#80cdc1", ready: "#35978f", inspected: "#999999",
  };

  // --- style -----------------------------------------------------------------------------

  function matchColour(property) {
    const pairs = Object.entries(COLOURS[property]).flat();
    return ["match", ["get", property], ...pairs, "#999999"];
  }

  // The colour of a grid cell: that of the category with the most trees in it.
  const gridColour = [
    "case",
    ["all", [">=", ["get", "urban"], ["get", "scattered"]], [">=", ["get", "urban"], ["get", "plantation"]]],
    COLOURS.category.urban,
    [">=", ["get", "scattered"], ["get", "plantation"]],
    COLOURS.category.scattered,
    COLOURS.category.plantation,
  ];

  function style() {
    const vector = archive
      ? { archive: { type: "vector", url: `pmtiles://${archive}` } }
      : {
        trees: { type: "vector", tiles: [tilesUrl("trees")], minzoom: 0, maxzoom: 16 },
        stands: { type: "vector", tiles: [tilesUrl("stands")], minzoom: 0, maxzoom: 15 },
        communes: { type: "vector", tiles: [tilesUrl("communes")], minzoom: 0, maxzoom: 14 },
      };
    const sources = {
      ...vector,
      nurseries: { type: "geojson", data: { type: "FeatureCollection", features: [] } },
      custody: { type: "geojson", data: { type: "FeatureCollection", features: [] } },
      found: { type: "geojson", data: { type: "FeatureCollection", features: [] } },
      // Tree care changes by the minute: always the live tiles, never an archive.
      care_due: { type: "vector", tiles: [tilesUrl("care_inspections_due")], minzoom: 0, maxzoom: 16 },
      care_damage: { type: "vector", tiles: [tilesUrl("care_storm_damage")], minzoom: 0, maxzoom: 16 },
    };
    const layers = [{ id: "background", type: "background", paint: { "background-color": "#eef1ea" } }];
    if (config.basemapUrl) {
      sources.basemap = { type: "raster", tiles: [config.basemapUrl], tileSize: 256 };
      layers.push({ id: "basemap", type: "raster", source: "basemap" });
    }
    layers.push(
      { id: "communes-fill", type: "fill", source: sourceOf("communes"), "source-layer": "communes",
        paint: { "fill-color": "#ffffff", "fill-opacity": 0.35 } },
      { id: "stands-fill", type: "fill", source: sourceOf("stands"), "source-layer": "stands",
        paint: { "fill-color": "#7fbf7b", "fill-opacity": 0.45 } },
      { id: "stands-line", type: "line", source: sourceOf("stands"), "source-layer": "stands",
        paint: { "line-color": "#2d7a35", "line-width": 0.8 } },
      { id: "communes-line", type: "line", source: sourceOf("communes"), "source-layer": "communes",
        paint: { "line-color": "#6b5b95", "line-width": 1.2, "line-dasharray": [3, 2] } },
      { id: "tree-cells", type: "circle", source: sourceOf("trees"), "source-layer": "trees_grid",
        paint: {
          "circle-color": gridColour,
          "circle-opacity": 0.8,
          // Grid cells are 16 px apart below the point zoom and 8 px apart above it (dense
          // tiles): keep circles within their cell, larger for more trees.
          "circle-radius": ["interpolate", ["linear"], ["zoom"],
            config.pointZoom - 1, ["interpolate", ["linear"], ["log10", ["get", "count"]], 0, 2.5, 4, 8],
            config.pointZoom, ["interpolate", ["linear"], ["log10", ["get", "count"]], 0, 1.5, 3, 4]],
          "circle-stroke-color": "#ffffff",
          "circle-stroke-width": 1,
        } },
      { id: "trees", type: "circle", source: sourceOf("trees"), "source-layer": "trees",
        paint: {
          "circle-color": matchColour("category"),
          "circle-radius": ["interpolate", ["linear"], ["zoom"], 13, 2.5, 17, 6, 20, 10],
          "circle-stroke-color": "#ffffff",
          "circle-stroke-width": ["interpolate", ["linear"], ["zoom"], 13, 0.3, 17, 1],
        } },
      { id: "nurseries", type: "circle", source: "nurseries",
        paint: {
          "circle-color": "#8c510a", "circle-radius": 7,
          "circle-stroke-color": "#ffffff", "circle-stroke-width": 2,
        } },
      { id: "custody", type: "circle", source: "custody", layout: { visibility: "none" },
        paint: {
          "circle-color": ["match", ["get", "event_type"], ...Object.entries(CUSTODY_COLOURS).flat(), "#555555"],
          "circle-radius": 5, "circle-stroke-color": "#ffffff", "circle-stroke-width": 1,
        } },
      { id: "care-due", type: "circle", source: "care_due", "source-layer": "care_inspections_due",
        layout: { visibility: "none" },
        paint: {
          "circle-color": ["match", ["get", "risk"], ...Object.entries(RISK_COLOURS).flat(), "#555555"],
          "circle-radius": ["interpolate", ["linear"], ["zoom"], 10, 2.5, 17, 7],
          "circle-stroke-color": "#ffffff", "circle-stroke-width": 1,
        } },
      { id: "care-damage", type: "circle", source: "care_damage", "source-layer": "care_storm_damage",
        layout: { visibility: "none" },
        paint: {
          "circle-color": ["match", ["get", "priority"], 1, "#b2182b", 2, "#e66101", 3, "#fdae61", "#1f78b4"],
          "circle-radius": ["interpolate", ["linear"], ["zoom"], 10, 3, 17, 8],
          "circle-stroke-color": "#000000", "circle-stroke-width": 1,
        } },
      { id: "found", type: "circle", source: "found",
        paint: {
          "circle-color": "rgba(0,0,0,0)", "circle-radius": 14,
          "circle-stroke-color": "#e31a1c", "circle-stroke-width": 3,
        } },
    );
    return { version: 8, sources, layers };
  }

  // --- the view in the URL hash: #map=zoom/lat/lon&layers=...&category=...&colour=... ----------

  const hashState = new URLSearchParams(location.hash.slice(1));
  const hashView = (hashState.get("map") || "").split("/").map(Number);
  const viewInHash = hashView.length === 3 && hashView.every(Number.isFinite);

  const map = new maplibregl.Map({
    container: "map",
    style: style(),
    center: viewInHash ? [hashView[2], hashView[1]] : [105.84, 21.59],
    zoom: viewInHash ? hashView[0] : 8,
    attributionControl: false,
    // lets a test (or a user) read the canvas back; MapLibre 5 ignores a top-level
    // preserveDrawingBuffer, and the canvas then reads back black
    canvasContextAttributes: { preserveDrawingBuffer: true },
  });
  map.addControl(new maplibregl.NavigationControl(), "top-right");
  map.addControl(new maplibregl.ScaleControl(), "bottom-right");
  window.smarttreesMap = map; // for the browser test and the console

  const showZoom = () => {
    document.getElementById("zoom-hint").textContent =
      t("map.zoom_hint", { point: config.pointZoom, zoom: map.getZoom().toFixed(1) });
  };
  map.on("zoomend", showZoom);

  // What the page shows, written to the hash so a link opens the same view.
  function writeHash() {
    const c = map.getCenter();
    const state = new URLSearchParams();
    state.set("map", `${map.getZoom().toFixed(2)}/${c.lat.toFixed(5)}/${c.lng.toFixed(5)}`);
    const on = [...document.querySelectorAll("input[data-layers], input[data-raster]")]
      .filter((box) => box.checked).map((box) => box.dataset.raster ? `raster-${box.dataset.raster}` : box.dataset.layers.split(",")[0]);
    state.set("layers", on.join(","));
    Object.entries(selects).forEach(([name, select]) => { if (select.value) state.set(name, select.value); });
    if (colourBy !== "category") state.set("colour", colourBy);
    history.replaceState(null, "", `#${state.toString().replace(/%2F/g, "/").replace(/%2C/g, ",")}`);
  }
  map.on("moveend", writeHash);
  // The layers named in the hash (when it names any) are those switched on.
  const hashLayers = hashState.has("layers") ? hashState.get("layers").split(",") : null;
  function layerOnInHash(box) {
    const id = box.dataset.raster ? `raster-${box.dataset.raster}` : box.dataset.layers.split(",")[0];
    return hashLayers.includes(id);
  }

  // --- the panel: open at first (on a phone a sheet over the map's lower part); the button
  // hides it to give the whole screen to the map, and shows it again.

  const toggle = document.getElementById("panel-toggle");
  function openPanel(open) {
    document.body.classList.toggle("panel-closed", !open);
    toggle.setAttribute("aria-expanded", String(open));
  }
  openPanel(true);
  toggle.addEventListener("click", () => openPanel(document.body.classList.contains("panel-closed")));

  // --- helpers ---------------------------------------------------------------------------

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) {
      let message = `${response.status}`;
      try { message = (await response.json()).description || message; } catch (e) { /* not JSON */ }
      throw new Error(message);
    }
    return response.json();
  }

  function element(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    children.forEach((c) => node.append(c));
    return node;
  }

  // --- filters ---------------------------------------------------------------------------

  // One select per filter of the catalogue's trees layer (options.json's "filters"), keyed
  // by its query parameter.
  const selects = {};

  // A choice's label: a fixed value's message ("category.urban"), else the row's label columns.
  function choiceLabel(filter, choice) {
    if (!filter.value) {
      const key = `${filter.param}.${choice}`;
      return i18n.has(key) ? t(key) : String(choice);
    }
    const [first, ...rest] = filter.labels.map((column) => choice[column]).filter((v) => v);
    return rest.length ? `${first} (${rest.join(", ")})` : String(first ?? choice[filter.value]);
  }

  function buildFilter(filter, options) {
    const id = `filter-${filter.param}`;
    const select = element("select", { id, name: filter.param },
      element("option", { value: "" }, t(`filter.${filter.param}.all`)));
    options[filter.options].forEach((choice) => {
      const value = filter.value ? choice[filter.value] : choice;
      select.append(element("option", { value: String(value) }, choiceLabel(filter, choice)));
    });
    if (filter.bbox) { // zoom to the chosen row (a commune)
      select.addEventListener("change", () => {
        const row = options[filter.options].find((c) => String(c[filter.value]) === select.value);
        if (row && row.bbox && row.bbox[0] !== null) map.fitBounds(row.bbox, { padding: 30 });
      });
    }
    document.getElementById("filters").append(element("label", { for: id }, t(`filter.${filter.param}`)), select);
    selects[filter.param] = select;
    return select;
  }

  // Filters go to the server as query parameters, so the low-zoom counts obey them too.
  function applyFilters() {
    writeHash();
    if (archive) { // the archive holds every tree: fixed-choice filters are applied in the page
      const parts = filters.filter((f) => !f.value && selects[f.param].value)
        .map((f) => ["==", ["get", f.field], selects[f.param].value]);
      map.setFilter("trees", parts.length ? ["all", ...parts] : null);
      return;
    }
    const query = new URLSearchParams();
    Object.entries(selects).forEach(([name, select]) => { if (select.value) query.set(name, select.value); });
    const suffix = query.toString() ? `?${query}` : "";
    map.getSource("trees").setTiles([tilesUrl("trees") + suffix]);
  }

  let filters = [];
  async function loadOptions() {
    const options = await getJson(`${base}/map/options.json`);
    filters = options.filters;
    filters.forEach((filter) => {
      const select = buildFilter(filter, options);
      select.value = hashState.get(filter.param) || "";
      select.addEventListener("change", applyFilters);
      if (archive && filter.value) { // choices from a table need the server's tiles
        select.disabled = true;
        select.title = t("filter.archive");
      }
    });
    if (filters.some((f) => selects[f.param].value)) applyFilters();
    // Open on the whole province, leaving room for the panel on a wide screen; a link opens
    // where it was made.
    const wide = !window.matchMedia("(max-width: 600px)").matches;
    if (options.bounds && !viewInHash) {
      const bottom = wide ? 20 : Math.round(0.45 * window.innerHeight) + 10; // above the sheet
      map.fitBounds(options.bounds, { padding: { top: 20, bottom, left: wide ? 280 : 20, right: 20 }, animate: false });
    }
    showZoom();
    writeHash();
  }

  // Nurseries are few: one GeoJSON request to the features API.
  async function loadNurseries() {
    try {
      const data = await getJson(`${base}/collections/nurseries/items?f=json&limit=1000`);
      map.getSource("nurseries").setData(data);
    } catch (error) {
      console.warn("nurseries not shown:", error.message);
    }
  }

  // Custody scans in view, from zoom 10 when the layer is on (a province holds 200,000 of them).
  const CUSTODY_MIN_ZOOM = 10;
  async function loadCustody() {
    const box = document.getElementById("custody-toggle");
    const note = document.getElementById("custody-note");
    if (!box.checked) return;
    if (map.getZoom() < CUSTODY_MIN_ZOOM) {
      note.textContent = t("custody.zoom_in", { zoom: CUSTODY_MIN_ZOOM });
      map.getSource("custody").setData({ type: "FeatureCollection", features: [] });
      return;
    }
    const b = map.getBounds();
    const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(5)).join(",");
    try {
      const data = await getJson(`${base}/collections/custody_events/items?f=json&limit=2000&bbox=${bbox}`);
      map.getSource("custody").setData(data);
      note.textContent = t("custody.in_view", { count: data.features.length });
    } catch (error) {
      note.textContent = t("custody.failed", { message: error.message });
    }
  }
  map.on("moveend", loadCustody);
  document.getElementById("custody-toggle").addEventListener("change", loadCustody);

  // --- colouring and legend --------------------------------------------------------------

  const swatch = (kind, style) => element("span", { class: `swatch ${kind}`, style: style || "" });
  const circle = (colour) => swatch("circle", `background:${colour}`);

  function drawLegend() {
    const legend = document.getElementById("legend");
    legend.replaceChildren(...Object.entries(COLOURS[colourBy]).map(([name, colour]) =>
      element("li", {}, circle(colour), t(`${colourBy}.${name}`))));
    drawLayerLegend();
  }

  // Every other symbol drawn: always the base layers, and the classes of a layer while it is on.
  const CLASSED = [
    ["custody", "legend.custody", CUSTODY_COLOURS, "custody.step."],
    ["care-due", "legend.care_due", RISK_COLOURS, "care.risk."],
    ["care-damage", "legend.care_damage", { 1: "#b2182b", 2: "#e66101", 3: "#fdae61" }, "care.priority."],
  ];
  function drawLayerLegend() {
    const list = document.getElementById("legend-layers");
    const visible = (id) => map.getLayer(id) && map.getLayoutProperty(id, "visibility") !== "none";
    const items = [
      element("li", {}, circle(COLOURS.category.plantation), t("legend.cells")),
      element("li", {}, swatch("fill", "background:rgba(127,191,123,0.6)"), t("layers.stands")),
      element("li", {}, circle("#8c510a"), t("layers.nurseries")),
      element("li", {}, swatch("line"), t("layers.communes")),
      element("li", {}, swatch("ring"), t("legend.found")),
    ];
    CLASSED.filter(([id]) => visible(id)).forEach(([, title, colours, prefix]) => {
      const classes = Object.entries(colours).map(([name, colour]) =>
        element("li", {}, circle(colour), i18n.has(prefix + name) ? t(prefix + name) : name));
      items.push(element("li", { class: "classed" }, element("div", {}, title ? t(title) : "", element("ul", {}, ...classes))));
    });
    document.querySelectorAll("input[data-raster]").forEach((box) => {
      if (box.checked) items.push(element("li", {}, swatch("fill", "background:linear-gradient(to right,#edf8e9,#005a32)"), box.parentElement.textContent.trim()));
    });
    list.replaceChildren(...items);
  }

  document.querySelectorAll("input[name=colour-by]").forEach((radio) => {
    radio.addEventListener("change", () => {
      colourBy = radio.value;
      map.setPaintProperty("trees", "circle-color", matchColour(colourBy));
      drawLegend();
      writeHash();
    });
  });

  // Tree care filters: the risk classes shown, and only trees due by today.
  function careFilter() {
    const risk = document.getElementById("care-risk").value;
    const dueOnly = document.getElementById("care-due-only").checked;
    const parts = ["all"];
    if (risk) parts.push(["in", ["get", "risk"], ["literal", risk.split(",")]]);
    if (dueOnly) parts.push(["<=", ["get", "next_due"], new Date().toISOString().slice(0, 10)]);
    map.setFilter("care-due", parts.length > 1 ? parts : null);
  }
  document.getElementById("care-risk").addEventListener("change", careFilter);
  document.getElementById("care-due-only").addEventListener("change", careFilter);
  window.smarttreesCareFilter = careFilter;

  function showLayers(box) {
    box.dataset.layers.split(",").forEach((id) =>
      map.setLayoutProperty(id, "visibility", box.checked ? "visible" : "none"));
  }
  document.querySelectorAll("input[data-layers]").forEach((box) => {
    box.addEventListener("change", () => {
      showLayers(box);
      drawLayerLegend();
      writeHash();
    });
  });
  // The layers and colouring a link names (once the style is loaded: it takes them then).
  function applyHashLayers() {
    if (hashLayers) {
      document.querySelectorAll("input[data-layers]").forEach((box) => {
        box.checked = layerOnInHash(box);
        showLayers(box);
      });
    }
    if (hashState.get("colour") === "condition") {
      document.querySelector("input[name=colour-by][value=condition]").checked = true;
      colourBy = "condition";
      map.setPaintProperty("trees", "circle-color", matchColour(colourBy));
    }
    if (document.getElementById("custody-toggle").checked) loadCustody();
  }

  // --- popups ----------------------------------------------------------------------------

  const FIELDS = ["category", "species_vi", "species_name", "species", "condition", "dbh_cm",
    "height_m", "crown_m", "planted_on", "commune_code", "area_ha"];
  // A value shown as its message when the catalogue has one (category.urban, condition.good).
  const valueText = (key, value) => (i18n.has(`${key}.${value}`) ? t(`${key}.${value}`) : String(value));

  function attributeTable(props) {
    const rows = FIELDS.filter((key) => props[key] !== undefined && props[key] !== null)
      .map((key) => element("tr", {}, element("th", {}, t(`field.${key}`)), element("td", {}, valueText(key, props[key]))));
    return element("table", {}, ...rows);
  }

  function historyList(history) {
    const items = history.map((h) => {
      const when = h.changed_at.slice(0, 16).replace("T", " ");
      const fields = h.changes && h.change === "update" ? `: ${Object.keys(h.changes).join(", ")}` : "";
      return element("li", {}, `${when} ${h.change}${fields}${h.source ? ` (${h.source})` : ""}`);
    });
    return element("ol", { class: "history" }, ...items);
  }

  // A tree's checks from the field app and the office (care inspections), newest first.
  function checksList(checks) {
    const items = checks.map((c) => {
      const parts = [c.inspected_on, c.condition && valueText("condition", c.condition),
        c.dbh_cm && t("popup.check.dbh", { dbh: c.dbh_cm }), c.height_m && `${c.height_m} m`,
        t("popup.check.risk", { risk: valueText("care.risk", c.risk) }), c.defects.length && c.defects.join(", "),
        c.photos && t(c.photos > 1 ? "popup.check.photos" : "popup.check.photo", { count: c.photos })];
      return element("li", {}, parts.filter(Boolean).join(" · "));
    });
    return element("ol", { class: "checks" }, ...items);
  }

  // Show what the tile knows at once, then the full record and its history.
  async function openTreePopup(id, lngLat, tileProps) {
    const box = element("div", { class: "tree-popup" },
      element("h3", {}, tileProps.tree_code || t("popup.tree", { id })), attributeTable(tileProps));
    const popup = new maplibregl.Popup({ maxWidth: "320px" }).setLngLat(lngLat).setDOMContent(box).addTo(map);
    try {
      const item = await getJson(`${base}/collections/trees/items/${id}?f=json`);
      box.replaceChild(attributeTable(item.properties || {}), box.querySelector("table"));
    } catch (error) {
      console.warn("tree record not loaded:", error.message);
    }
    try {
      const history = await getJson(`${base}/api/trees/${id}/history`);
      if (history.checks?.length) box.append(element("strong", {}, t("popup.checks")), checksList(history.checks));
      box.append(element("strong", {}, t("popup.history")), historyList(history.history));
    } catch (error) {
      box.append(element("p", {}, t("popup.history_failed", { message: error.message })));
    }
    return popup;
  }

  map.on("click", "trees", (event) => {
    const feature = event.features[0];
    openTreePopup(feature.id, feature.geometry.coordinates, feature.properties);
  });

  map.on("click", "tree-cells", (event) => {
    const p = event.features[0].properties;
    new maplibregl.Popup()
      .setLngLat(event.lngLat)
      .setDOMContent(element("div", { class: "cell-popup" },
        t("popup.cell", p)))
      .addTo(map);
    map.easeTo({ center: event.lngLat, zoom: Math.min(map.getZoom() + 2, config.pointZoom) });
  });

  map.on("click", "stands-fill", (event) => {
    if (map.queryRenderedFeatures(event.point, { layers: ["trees", "tree-cells", "nurseries"] }).length) return;
    const p = event.features[0].properties;
    new maplibregl.Popup().setLngLat(event.lngLat)
      .setDOMContent(element("div", {}, element("strong", {}, t("popup.stand", { code: p.stand_code })),
        attributeTable({ species: p.species_vi, planted_on: p.planting_year, area_ha: p.area_ha })))
      .addTo(map);
  });

  map.on("click", "nurseries", (event) => {
    const p = event.features[0].properties;
    new maplibregl.Popup().setLngLat(event.features[0].geometry.coordinates)
      .setDOMContent(element("div", {}, element("strong", {}, t("popup.nursery", { name: p.name || p.nursery_code }))))
      .addTo(map);
  });

  map.on("click", "custody", (event) => {
    const p = event.features[0].properties;
    const when = String(p.occurred_at || "").slice(0, 16).replace("T", " ");
    const step = i18n.has(`custody.step.${p.event_type}`) ? t(`custody.step.${p.event_type}`) : p.event_type;
    const rows = [["step", step], ["when", when], ["species", p.species_name],
      ["stand", p.stand_code], ["destination", p.destination], ["fpl", p.fpl_number],
      ["volume", p.volume_m3], ["seedlings", p.quantity], ["status_after", p.status_after]]
      .filter(([, v]) => v !== undefined && v !== null && v !== "")
      .map(([k, v]) => element("tr", {}, element("th", {}, t(`custody.field.${k}`)), element("td", {}, String(v))));
    new maplibregl.Popup().setLngLat(event.features[0].geometry.coordinates)
      .setDOMContent(element("div", { class: "custody-popup" }, element("strong", {}, p.code), element("table", {}, ...rows)))
      .addTo(map);
  });

  ["trees", "tree-cells", "nurseries", "custody"].forEach((id) => {
    map.on("mouseenter", id, () => { map.getCanvas().style.cursor = "pointer"; });
    map.on("mouseleave", id, () => { map.getCanvas().style.cursor = ""; });
  });

  // --- search by tree code ---------------------------------------------------------------

  document.getElementById("search").addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = document.getElementById("search-message");
    const code = document.getElementById("search-code").value.trim();
    message.textContent = "";
    try {
      const tree = await getJson(`${base}/map/search.json?code=${encodeURIComponent(code)}`);
      const position = [tree.lon, tree.lat];
      map.getSource("found").setData({ type: "Feature", geometry: { type: "Point", coordinates: position }, properties: {} });
      // Listen first: without animation (reduced motion) flyTo ends before it returns.
      map.once("moveend", () => openTreePopup(tree.id, position, { tree_code: tree.tree_code, category: tree.category }));
      map.flyTo({ center: position, zoom: Math.max(map.getZoom(), 17) });
    } catch (error) {
      message.textContent = error.message;
    }
  });

  // --- registered rasters (density, canopy, land cover...): PNG tiles under the vectors ------

  const RASTER_OPACITY = 0.75;
  const formatValue = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));

  function rasterLegend(raster) {
    if (!raster.legend.length) return element("p", { class: "hint" }, t("rasters.file_colours"));
    const stops = raster.legend.map((s, i) => `${s.color} ${(100 * i) / (raster.legend.length - 1)}%`);
    const first = raster.legend[0].value;
    const last = raster.legend[raster.legend.length - 1].value;
    const units = raster.units ? ` ${raster.units}` : "";
    return element("div", { class: "raster-legend" },
      element("div", { class: "ramp", style: `background: linear-gradient(to right, ${stops.join(", ")})` }),
      element("div", { class: "ends" }, element("span", {}, formatValue(first)),
        element("span", {}, `${formatValue(last)}${units}`)));
  }

  // One layer per raster, hidden until ticked, drawn beneath the communes and the trees.
  function addRaster(raster) {
    const id = `raster-${raster.name}`;
    map.addSource(id, { type: "raster", tiles: [raster.tiles], tileSize: 256, bounds: raster.bbox });
    map.addLayer({ id, type: "raster", source: id, layout: { visibility: "none" },
      paint: { "raster-opacity": RASTER_OPACITY } }, "communes-fill");
    const box = element("input", { type: "checkbox", "data-raster": raster.name });
    const opacity = element("input", { type: "range", min: "0", max: "100",
      value: String(RASTER_OPACITY * 100), "aria-label": t("rasters.opacity", { title: raster.title }) });
    const show = () => map.setLayoutProperty(id, "visibility", box.checked ? "visible" : "none");
    if (hashLayers && hashLayers.includes(id)) {
      box.checked = true;
      show();
    }
    box.addEventListener("change", () => { show(); drawLayerLegend(); writeHash(); });
    opacity.addEventListener("input", () => map.setPaintProperty(id, "raster-opacity", Number(opacity.value) / 100));
    return element("div", { class: "raster-layer" },
      element("label", {}, box, ` ${raster.title}`), rasterLegend(raster), opacity);
  }

  async function loadRasters() {
    try {
      const { rasters } = await getJson(`${base}/api/rasters`);
      if (!rasters.length) return;
      const fieldset = document.getElementById("rasters");
      rasters.forEach((raster) => fieldset.append(addRaster(raster)));
      fieldset.hidden = false;
      drawLayerLegend();
    } catch (error) {
      console.warn("rasters not shown:", error.message);
    }
  }

  map.on("load", () => {
    applyHashLayers();
    drawLegend();
    loadOptions().catch((error) => console.error("options not loaded:", error));
    loadNurseries();
    loadRasters();
  });
}).catch((error) => console.error("map not started:", error));
