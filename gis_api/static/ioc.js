// The IOC dashboard: the province summary, a choropleth per indicator, monthly trends.
// Every figure comes from the public API (/api/ioc/summary and the OGC collections); nothing
// is computed here but sums of published figures. Labels come from the message catalogue of
// the language chosen (static/i18n/<code>.json, keys "ioc.*").
SmartTreesI18n.load(`${window.SMARTTREES_IOC.base}/ioc/static`, window.SMARTTREES_IOC.languages).then((i18n) => {
  "use strict";

  const { t } = i18n;
  i18n.apply();
  i18n.picker(document.getElementById("lang"));
  document.title = `${t("ioc.short")} · SmartTrees`;
  const config = window.SMARTTREES_IOC;
  const base = config.base;
  const locale = i18n.lang === "vi" ? "vi-VN" : i18n.lang;
  const number = new Intl.NumberFormat(locale);

  // Summary figures: [key in the summary (and its message ioc.figure.<key>), how to show it].
  const FIGURES = [
    ["documents.total", "count"],
    ["documents.electronic", "count"],
    ["documents.courier_cost_saved_vnd", "vnd"],
    ["citizen_support.people", "count"],
    ["citizen_support.amount_vnd", "vnd"],
    ["citizen_support.provinces", "count"],
    ["trees.total", "count"],
    ["trees.progress", "share"],
  ];

  // Choropleth indicators: id (its message: ioc.indicator.<id>), and the value of a commune
  // (null: withheld or none).
  const INDICATORS = [
    ["documents_sent", (c) => sumOf(data.documents, c, "sent")],
    ["courier_saving_vnd", (c) => sumOf(data.documents, c, "courier_saving_vnd")],
    ["support_people", (c) => (data.support[c] ? data.support[c].people : null)],
    ["support_vnd", (c) => (data.support[c] ? data.support[c].amount_vnd : null)],
    ["trees", (c) => (data.trees[c] ? data.trees[c].trees : null)],
    ["trees_per_km2", (c) => (data.trees[c] ? data.trees[c].trees_per_km2 : null)],
    ["progress", (c) => (data.trees[c] ? data.trees[c].progress : null)],
  ];

  // The target the tree chart is drawn against: the commune's when one is picked (none
  // loaded: no line), else the province's.
  function target() {
    if (!state.commune) return data.summary.trees.target;
    const commune = data.trees[state.commune];
    return commune && commune.target != null ? commune.target : null;
  }

  const data = { summary: null, communes: [], names: {}, documents: [], agencyMonths: [],
                 support: {}, trees: {}, treeMonths: [] };
  const state = { commune: "", indicator: INDICATORS[0][0] };
  const charts = {
    map: echarts.init(document.getElementById("map")),
    documents: echarts.init(document.getElementById("documents-chart")),
    trees: echarts.init(document.getElementById("trees-chart")),
  };

  async function getJSON(path) {
    const response = await fetch(base + path, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  // Every feature of a collection, following the next links.
  async function features(collection, query) {
    let url = `/collections/${collection}/items?limit=10000&f=json${query || ""}`;
    const all = [];
    while (url) {
      const page = await getJSON(url);
      all.push(...page.features);
      const next = (page.links || []).find((l) => l.rel === "next");
      url = next ? next.href.replace(base, "") : null;
    }
    return all;
  }

  function sumOf(rows, commune, field) {
    const mine = rows.filter((r) => r.commune_code === commune);
    return mine.length ? mine.reduce((s, r) => s + r[field], 0) : null;
  }

  function pick(object, key) {
    return key.split(".").reduce((o, k) => (o == null ? o : o[k]), object);
  }

  function show(value, kind) {
    if (value === null || value === undefined) return t("ioc.withheld");
    if (kind === "share") return `${(value * 100).toFixed(1)} %`;
    if (kind === "vnd") return `${number.format(value)} đ`;
    return number.format(value);
  }

  function periodOf(key) {
    const part = key.split(".")[0];
    const period = data.summary[part] && data.summary[part].period;
    if (period && period.from) return `${period.from} – ${period.to}`;
    if (part === "trees") return t("ioc.target_trees", { target: number.format(data.summary.trees.target) });
    return "";
  }

  function drawSummary() {
    const s = data.summary;
    document.getElementById("province").textContent = s.province.name || "";
    const box = document.getElementById("summary");
    box.replaceChildren();
    for (const [key, kind] of FIGURES) {
      const value = pick(s, key);
      const definition = s.definitions[key] || s.definitions[key.replace(/\.[^.]*$/, ".total")];
      const div = document.createElement("div");
      div.className = "figure";
      div.dataset.key = key;
      div.dataset.value = value === null ? "" : String(value);
      div.innerHTML = '<div class="label"></div><div class="value"></div>' +
        '<div class="period"></div><div class="definition"></div>';
      div.querySelector(".label").textContent = t(`ioc.figure.${key}`);
      div.querySelector(".value").textContent = show(value, kind);
      div.querySelector(".period").textContent = periodOf(key);
      div.querySelector(".definition").textContent =
        definition ? definition[i18n.lang] || definition.en : "";
      box.append(div);
    }
  }

  function indicator() {
    return INDICATORS.find((i) => i[0] === state.indicator);
  }

  function drawMap() {
    const [id, value] = indicator();
    const rows = data.communes.map((c) => {
      const v = value(c.id);
      return { name: c.id, value: v === null ? NaN : v };
    });
    const values = rows.map((r) => r.value).filter((v) => !Number.isNaN(v));
    charts.map.setOption({
      title: { text: t(`ioc.indicator.${id}`), left: 8, top: 4, textStyle: { fontSize: 13 } },
      tooltip: {
        trigger: "item",
        formatter: (p) => `${data.names[p.name] || p.name}: ${
          Number.isNaN(p.value) ? t("ioc.withheld") : number.format(p.value)}`,
      },
      visualMap: { min: values.length ? Math.min(...values) : 0,
                   max: values.length ? Math.max(...values, 1) : 1,
                   left: 8, bottom: 8, calculable: true,
                   inRange: { color: ["#edf8e9", "#74c476", "#005a32"] } },
      series: [{
        id: "communes", type: "map", map: "communes", nameProperty: "code", roam: true,
        selectedMode: "single", data: rows,
        itemStyle: { areaColor: "#d0d0d0", borderColor: "#5f6f5f" },
        emphasis: { label: { show: false } },
        select: { itemStyle: { borderColor: "#c0392b", borderWidth: 2 } },
      }],
    }, { replaceMerge: ["series"] });
  }

  // The monthly rows of the commune picked, or of the whole province added up.
  function documentMonths() {
    const source = state.commune
      ? data.documents.filter((r) => r.commune_code === state.commune)
      : data.agencyMonths;
    const months = {};
    for (const r of source) {
      const m = (months[r.month] = months[r.month] || { sent: 0, received: 0, electronic: 0 });
      m.sent += r.sent;
      m.received += r.received;
      m.electronic += r.sent_electronic;
    }
    return Object.keys(months).sort().map((month) => ({ month, ...months[month] }));
  }

  function treeMonths() {
    const source = state.commune
      ? data.treeMonths.filter((r) => r.commune_code === state.commune)
      : data.treeMonths;
    const months = {};
    for (const r of source) {
      const m = (months[r.month] = months[r.month] || { trees: 0, planted: 0 });
      m.trees += r.trees;
      m.planted += r.planted;
    }
    return Object.keys(months).sort().map((month) => ({ month, ...months[month] }));
  }

  function drawTrends() {
    const where = state.commune ? data.names[state.commune] || state.commune : t("ioc.whole_province");
    document.getElementById("trend-title").textContent = where;
    const docs = documentMonths();
    charts.documents.setOption({
      title: { text: t("ioc.documents_chart"), left: 8, textStyle: { fontSize: 13 } },
      tooltip: { trigger: "axis" },
      legend: { top: 24 },
      grid: { top: 60, left: 60, right: 16, bottom: 28 },
      xAxis: { type: "category", data: docs.map((d) => d.month.slice(0, 7)) },
      yAxis: { type: "value" },
      series: [
        { id: "sent", name: t("ioc.series.sent"), type: "bar", data: docs.map((d) => d.sent) },
        { id: "received", name: t("ioc.series.received"), type: "bar", data: docs.map((d) => d.received) },
        { id: "electronic", name: t("ioc.series.electronic"), type: "line",
          data: docs.map((d) => d.electronic) },
      ],
    }, { replaceMerge: ["series"] });
    const trees = treeMonths();
    charts.trees.setOption({
      title: { text: t("ioc.trees_chart"), left: 8,
               textStyle: { fontSize: 13 } },
      tooltip: { trigger: "axis" },
      legend: { top: 24 },
      grid: { top: 60, left: 70, right: 50, bottom: 28 },
      xAxis: { type: "category", data: trees.map((d) => d.month.slice(0, 7)) },
      yAxis: [{ type: "value", scale: true }, { type: "value" }],
      series: [
        { id: "trees", name: t("ioc.series.trees"), type: "line", data: trees.map((d) => d.trees),
          markLine: target() == null ? { data: [] } : {
            symbol: "none", label: { formatter: `${t("ioc.target")} {c}` },
            data: [{ yAxis: target(), name: "target" }] } },
        { id: "planted", name: t("ioc.series.planted"), type: "bar", yAxisIndex: 1,
          data: trees.map((d) => d.planted) },
      ],
    }, { replaceMerge: ["series"] });
  }

  function select(commune) {
    state.commune = commune;
    document.getElementById("commune").value = commune;
    charts.map.dispatchAction({ type: "unselect", seriesIndex: 0,
                                dataIndex: data.communes.map((_, i) => i) });
    if (commune) charts.map.dispatchAction({ type: "select", seriesIndex: 0, name: commune });
    drawTrends();
  }

  function fillControls() {
    const indicatorSelect = document.getElementById("indicator");
    for (const [id] of INDICATORS) indicatorSelect.add(new Option(t(`ioc.indicator.${id}`), id));
    indicatorSelect.addEventListener("change", () => {
      state.indicator = indicatorSelect.value;
      drawMap();
    });
    const communeSelect = document.getElementById("commune");
    for (const c of [...data.communes].sort((a, b) => data.names[a.id].localeCompare(data.names[b.id], locale))) {
      communeSelect.add(new Option(`${data.names[c.id]} (${c.id})`, c.id));
    }
    communeSelect.addEventListener("change", () => select(communeSelect.value));
    charts.map.on("click", (p) => select(p.name === state.commune ? "" : p.name));
  }

  async function load() {
    const props = (f) => f.properties;
    const [summary, communes, documents, agencyMonths, support, trees, treeMonthRows] =
      await Promise.all([
        getJSON("/api/ioc/summary"),
        features("communes", "&properties=code,name"),
        features("documents_by_commune_month", "&skipGeometry=true"),
        features("documents_by_agency_month", "&skipGeometry=true"),
        features("citizen_support_by_commune", "&skipGeometry=true"),
        features("trees_by_commune", "&skipGeometry=true"),
        features("tree_count_by_month"),
      ]);
    data.summary = summary;
    data.communes = communes;
    for (const c of communes) data.names[c.id] = c.properties.name;
    data.documents = documents.map(props);
    data.agencyMonths = agencyMonths.map(props);
    for (const f of support) data.support[f.id] = f.properties;
    for (const f of trees) data.trees[f.id] = f.properties;
    data.treeMonths = treeMonthRows.map(props);
    echarts.registerMap("communes", { type: "FeatureCollection",
      features: communes.map((c) => ({ type: "Feature", geometry: c.geometry,
                                       properties: { code: c.id, name: c.properties.name } })) });
    drawSummary();
    fillControls();
    drawMap();
    drawTrends();
  }

  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
  // For tests and for the curious: the charts, what is shown, and when it is ready.
  window.smarttreesIoc = { charts, state, data, select, documentMonths, treeMonths,
                           ready: load().then(() => true) };
}).catch((error) => console.error("dashboard not started:", error));
